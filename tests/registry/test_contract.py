"""Row checking and encoding against an input schema, and the tiny test model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from registry.contract import FieldProblem, RowCodec, scores_from_output
from registry.manifest import (
    Decision,
    FieldType,
    InputField,
    InputSchema,
    Manifest,
    OutputSpec,
    Thresholds,
)
from tests.factories import (
    DEFAULT_SCHEMA,
    NUMERIC_SCHEMA,
    logistic_model,
    make_manifest,
    random_rows,
)

codec = RowCodec(DEFAULT_SCHEMA)
GOOD = {"amount": 12.5, "card_age_days": 30, "is_foreign": False, "country": "US"}


def test_valid_row_has_no_problems_and_unknown_keys_are_kept_out() -> None:
    assert codec.check({**GOOD, "transaction_note": "x"}) == []


def test_every_bad_field_is_named() -> None:
    row = {
        "amount": -1,
        "card_age_days": 1.5,
        "is_foreign": "yes",
        "device_age_days": math.inf,
        "country": "FR",
        "merchant_category": 7,
    }
    assert [str(p) for p in codec.check(row)] == [
        "amount: must be >= 0 (got -1)",
        "card_age_days: must be a whole number",
        "is_foreign: must be true or false",
        "device_age_days: must be a finite number (NaN and infinity are refused)",
        "country: 'FR' is not an allowed value (US, GB, DE, BR)",
        "merchant_category: must be a string",
    ]


def test_missing_required_and_wrong_types() -> None:
    assert codec.check({"amount": "12", "card_age_days": True}) == [
        FieldProblem("amount", "must be a number"),
        FieldProblem("card_age_days", "must be a number"),
        FieldProblem("is_foreign", "is required"),
        FieldProblem("country", "is required"),
    ]
    assert codec.check({**GOOD, "amount": 2e6}) == [
        FieldProblem("amount", "must be <= 1e+06 (got 2e+06)")
    ]


def test_encode_packs_numeric_and_categorical_inputs() -> None:
    feeds = codec.encode([GOOD, {**GOOD, "device_age_days": 3.0, "merchant_category": "travel"}])
    assert codec.input_names == ("numeric", "categorical")
    numeric = feeds["numeric"]
    assert numeric.dtype == np.float32
    assert numeric.shape == (2, 4)
    assert math.isnan(float(numeric[0, 3]))
    assert numeric[1].tolist() == [12.5, 30.0, 0.0, 3.0]
    assert feeds["categorical"].tolist() == [["US", ""], ["US", "travel"]]


def test_rows_holding_every_field_encode_as_field_by_field_does_with_or_without_gaps() -> None:
    # encode reads a row's numeric values in one call when the row has every field, and
    # falls back to field by field (NaN for a missing one) when a row lacks one.
    def by_field(rows: list[dict[str, object]]) -> list[list[float]]:
        fields = [f.name for f in DEFAULT_SCHEMA.numeric]
        return [[math.nan if r.get(f) is None else float(r[f]) for f in fields] for r in rows]  # type: ignore[arg-type]

    full = {**GOOD, "device_age_days": 3.0}
    cases = [
        [full, {**full, "amount": 7}],  # every field in every row
        [full, GOOD],  # the second row lacks an optional field
        [GOOD, full],  # the first one does
        [{**full, "device_age_days": None}],  # present but null: NaN too
    ]
    for rows in cases:
        got = codec.encode(rows)["numeric"]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, np.array(by_field(rows), dtype=np.float32))


def test_a_schema_of_one_numeric_field_encodes_one_column() -> None:
    one = RowCodec(InputSchema(fields=(InputField(name="amount", type=FieldType.FLOAT),)))
    assert one.encode([{"amount": 1.5}, {"amount": 2.0}])["numeric"].tolist() == [[1.5], [2.0]]
    assert one.encode([{"amount": 1.5}, {}])["numeric"].shape == (2, 1)


def test_scores_from_output_shapes() -> None:
    spec = OutputSpec()
    assert scores_from_output(spec, np.array([[0.2], [0.4]], dtype=np.float32)).tolist() == (
        pytest.approx([0.2, 0.4])
    )
    two_cols = OutputSpec(name="probabilities", column=1)
    assert scores_from_output(two_cols, np.array([[0.8, 0.2]])).tolist() == [0.2]
    with pytest.raises(ValueError, match=r"has shape \[1, 2\]; expected \[N\] or \[N, 1\]"):
        scores_from_output(spec, np.array([[0.8, 0.2]]))
    with pytest.raises(ValueError, match="has 2 columns; column 3 requested"):
        scores_from_output(OutputSpec(name="p", column=3), np.array([[0.8, 0.2]]))


def test_thresholds_decisions_are_decide_for_many_scores_as_plain_strings() -> None:
    scores = [0.0, 0.1, 0.3, 0.2999999, 0.5, 0.8, 0.79999, 1.0, math.nan]
    for t in (Thresholds(review=0.3, block=0.8), Thresholds(review=0.5, block=0.5)):
        got = t.decisions(scores)
        assert got == [t.decide(s).value for s in scores]
        assert all(type(d) is str for d in got)  # not enum members: records and counts
    assert Thresholds(review=0.3, block=0.8).decisions([]) == []


def test_thresholds_decide() -> None:
    t = Thresholds(review=0.3, block=0.8)
    assert [t.decide(s) for s in (0.1, 0.3, 0.79, 0.8)] == [
        Decision.ALLOW,
        Decision.REVIEW,
        Decision.REVIEW,
        Decision.BLOCK,
    ]
    with pytest.raises(ValidationError, match=r"review threshold 0\.9 is above block 0\.5"):
        Thresholds(review=0.9, block=0.5)


def test_schema_refusals_name_the_field() -> None:
    with pytest.raises(ValidationError, match="field amount appears twice"):
        InputSchema(fields=(InputField(name="amount", type=FieldType.FLOAT),) * 2)
    with pytest.raises(ValidationError, match="field c: minimum/maximum apply to numeric"):
        InputField(name="c", type=FieldType.CATEGORICAL, minimum=1)
    with pytest.raises(ValidationError, match="field x: allowed values apply to categorical"):
        InputField(name="x", type=FieldType.FLOAT, allowed=("a",))
    with pytest.raises(ValidationError, match="field x: minimum 2 > maximum 1"):
        InputField(name="x", type=FieldType.FLOAT, minimum=2, maximum=1)


def test_factory_model_scores_differ_by_weights_and_manifest_round_trips() -> None:
    model = logistic_model()
    manifest = make_manifest(model, with_sha=True)
    assert len(manifest.golden_examples) == 12
    assert all(0 <= g.expected_score <= 1 for g in manifest.golden_examples)
    again = Manifest.model_validate_json(manifest.model_dump_json())
    assert again == manifest
    other = make_manifest(logistic_model(bias=1.0))
    assert other.golden_examples[0].expected_score != manifest.golden_examples[0].expected_score
    assert len(random_rows(n=3)) == 3


def test_numbers_beyond_float32_are_refused() -> None:
    # Inputs are packed as float32: 1e300 would silently become infinity.
    assert [str(p) for p in codec.check({**GOOD, "device_age_days": 1e300})] == [
        "device_age_days: must be within ±3.402823e+38, the float32 range (got 1e+300)"
    ]
    assert [str(p) for p in codec.check({**GOOD, "device_age_days": -1e39})] == [
        "device_age_days: must be within ±3.402823e+38, the float32 range (got -1e+39)"
    ]
    assert codec.check({**GOOD, "device_age_days": 3.4028234663852886e38}) == []
    feeds = codec.encode([{**GOOD, "device_age_days": 3.4028234663852886e38}])
    assert np.isfinite(feeds["numeric"]).all()


def test_a_required_categorical_without_allowed_values_must_not_be_empty() -> None:
    schema = InputSchema(
        fields=[
            InputField(name="merchant", type=FieldType.CATEGORICAL),
            InputField(name="channel", type=FieldType.CATEGORICAL, required=False),
        ]
    )
    strict = RowCodec(schema)
    assert strict.check({"merchant": "", "channel": ""}) == [
        FieldProblem("merchant", "must not be empty")
    ]
    assert strict.check({"merchant": "acme", "channel": ""}) == []
    # With an allowed list, the list decides (and names the allowed values).
    assert [str(p) for p in codec.check({**GOOD, "country": ""})] == [
        "country: '' is not an allowed value (US, GB, DE, BR)"
    ]


numeric = RowCodec(NUMERIC_SCHEMA)
FULL: dict[str, object] = {
    "amount": 12.5,
    "card_age_days": 30,
    "is_foreign": True,
    "device_age_days": 3,
}


def test_the_numeric_shortcut_takes_complete_valid_rows_and_encodes_them_alike() -> None:
    rows: list[dict[str, object]] = [
        FULL,
        {**FULL, "amount": 0, "is_foreign": False},
        {**FULL, "amount": 1e6, "device_age_days": -2.5},
        {**FULL, "card_age_days": 2**53},
        {**FULL, "extra": "ignored by the model"},
    ]
    for row in rows:
        values = numeric.numeric_row(row)
        assert values is not None
        assert numeric.check(row) == []
        shortcut = numeric.encode_numeric([values])["numeric"]
        assert shortcut.dtype == np.float32
        assert shortcut.tolist() == numeric.encode([row])["numeric"].tolist()


def test_the_numeric_shortcut_leaves_every_other_row_to_the_full_check() -> None:
    refused: list[dict[str, object]] = [
        {**FULL, "amount": -1},
        {**FULL, "amount": 1e6 + 1},
        {**FULL, "amount": math.nan},
        {**FULL, "amount": math.inf},
        {**FULL, "amount": "12"},
        {**FULL, "amount": True},
        {**FULL, "amount": None},
        {**FULL, "card_age_days": 1.5},
        {**FULL, "card_age_days": 2**53 + 1},
        {**FULL, "is_foreign": 1},
        {**FULL, "device_age_days": 1e39},
        {k: v for k, v in FULL.items() if k != "amount"},
    ]
    for row in refused:
        assert numeric.numeric_row(row) is None
        assert numeric.check(row) != []
    valid_the_long_way: list[dict[str, object]] = [
        {**FULL, "card_age_days": 30.0},  # a whole float for an int
        {k: v for k, v in FULL.items() if k != "device_age_days"},  # an optional field missing
        {**FULL, "device_age_days": None},
    ]
    for row in valid_the_long_way:
        assert numeric.numeric_row(row) is None
        assert numeric.check(row) == []
    assert codec.numeric_row(GOOD) is None  # categorical fields: always the full check
