"""Drafting a manifest from an exported model and a sample of its data (``init-manifest``)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from onnx import TensorProto, helper

from registry.drafting import Draft, DraftOptions, draft_manifest
from registry.errors import DraftError
from registry.manifest import FieldType, InputField, OutputSpec
from registry.sample import FieldOptions, read_sample
from registry.validation import prepare_model
from tests.exported_models import (
    FRAME_SCHEMA,
    PROBABILITIES,
    lightgbm_matrix,
    margin_model,
    native_scores,
    sklearn_per_column,
    training_frame,
)

DEFAULTS = DraftOptions()
STRINGS_LEFT_OUT = DraftOptions(
    fields=FieldOptions(exclude=("merchant_country", "channel", "device_os"))
)


def _draft(model: bytes, frame: pd.DataFrame, options: DraftOptions = DEFAULTS) -> Draft:
    return draft_manifest(model, frame, options)


def _refusal(model: bytes, frame: pd.DataFrame, options: DraftOptions = DEFAULTS) -> str:
    with pytest.raises(DraftError) as caught:
        draft_manifest(model, frame, options)
    return str(caught.value)


def test_a_per_column_pipeline_gets_a_complete_manifest(tmp_path: Path) -> None:
    frame = training_frame()
    frame["is_fraud"] = 0  # a label column the model does not read
    frame.loc[3, "device_os"] = None  # one missing value: the field becomes optional
    frame.to_csv(tmp_path / "sample.csv", index=False)
    model = sklearn_per_column()
    draft = _draft(
        model, read_sample(tmp_path / "sample.csv"), DraftOptions(version="byo-1", golden=25)
    )
    manifest = draft.manifest
    fields = {f.name: f for f in manifest.input_schema.fields}
    assert list(fields) == [f.name for f in FRAME_SCHEMA.fields]
    assert fields["amount_usd"] == InputField(
        name="amount_usd",
        type=FieldType.FLOAT,
        minimum=0.0,
        description="sample range 3.3 .. 1999.61",
    )
    assert fields["account_age_days"].type is FieldType.INT
    assert fields["foreign_card"].type is FieldType.BOOL
    assert fields["merchant_country"].allowed == ("BR", "DE", "FR", "GB", "US")
    assert fields["device_os"].required is False
    assert manifest.output == PROBABILITIES
    assert manifest.amount_field == "amount_usd"
    assert draft.layout == "per-column (6 inputs)"
    assert draft.notes == (
        "sample columns the model does not read: is_fraud",
        "amount_field: amount_usd (pass --amount-field to choose another)",
    )
    # Thresholds: at least the asked shares of the sample (more where scores tie).
    assert 0.01 <= draft.block_share < 0.03
    assert 0.05 <= draft.review_share < 0.08
    assert manifest.thresholds.review <= manifest.thresholds.block
    # Golden rows: 25 across the whole score range, scored as the exported graph scores them.
    rows = [example.inputs for example in manifest.golden_examples]
    expected = np.array([example.expected_score for example in manifest.golden_examples])
    assert len(rows) == 25
    assert np.all(np.diff(expected) >= 0)
    assert (
        np.abs(native_scores(model, manifest.input_schema, rows, PROBABILITIES) - expected).max()
        <= 1e-5
    )
    prepare_model(model, manifest)


def test_parquet_and_a_matrix_model(tmp_path: Path) -> None:
    frame = training_frame()
    frame.to_parquet(tmp_path / "sample.parquet")
    sample = read_sample(tmp_path / "sample.parquet")
    model = lightgbm_matrix()
    assert _refusal(model, sample) == (
        "the model's single input 'input' takes numbers only; leave out the sample's string "
        "columns (merchant_country, channel, device_os) with --exclude"
    )
    strings = FieldOptions(exclude=("merchant_country", "channel", "device_os"))
    draft = _draft(
        model, sample, DraftOptions(fields=strings, amount_field="amount_usd", block_rate=0.02)
    )
    assert [f.name for f in draft.manifest.input_schema.fields] == [
        "amount_usd",
        "account_age_days",
        "foreign_card",
    ]
    assert draft.layout == "single-tensor (input 'input')"
    assert draft.notes == ()
    sample["extra"] = 1.0
    assert _refusal(model, sample, DraftOptions(fields=strings)) == (
        "graph input 'input' (tensor(float) [N, 3]) takes 3 columns but the sample has 4 "
        "numeric columns (amount_usd, account_age_days, foreign_card, extra); leave out the "
        "others with --exclude (the rest must be in the model's column order)"
    )


def test_observed_ranges_and_open_categories() -> None:
    options = FieldOptions(observed_ranges=True, max_categories=4)
    draft = _draft(sklearn_per_column(), training_frame(), DraftOptions(fields=options))
    fields = {f.name: f for f in draft.manifest.input_schema.fields}
    assert (fields["amount_usd"].minimum, fields["amount_usd"].maximum) == (3.3, 1999.61)
    assert fields["merchant_country"].allowed is None  # five values: more than four
    assert fields["channel"].allowed == ("app", "pos", "web")


def test_a_sample_without_a_column_the_model_reads() -> None:
    frame = training_frame().drop(columns=["channel", "device_os"])
    assert _refusal(sklearn_per_column(), frame) == (
        "the sample has no column 'channel', 'device_os' for the graph inputs of that name "
        "(its columns: amount_usd, account_age_days, foreign_card, merchant_country)"
    )


def test_columns_that_cannot_feed_their_inputs() -> None:
    model = sklearn_per_column()
    frame = training_frame()
    frame["account_age_days"] = frame["account_age_days"].astype(float)
    frame.loc[5, "account_age_days"] = np.nan
    assert _refusal(model, frame) == (
        "column 'account_age_days' has 1 missing values but graph input 'account_age_days' is "
        "tensor(int64), which cannot hold a missing value: fill them, or export the input as "
        "float"
    )
    frame = training_frame()
    frame["channel"] = 7
    assert _refusal(model, frame) == (
        "column 'channel' holds int64 values but graph input 'channel' is tensor(string): "
        "convert the column to strings in the sample and the pipeline"
    )
    frame = training_frame()
    frame["amount_usd"] = "many"
    assert _refusal(model, frame) == (
        "column 'amount_usd' holds strings but graph input 'amount_usd' is tensor(double)"
    )


def test_an_output_that_is_not_a_probability() -> None:
    assert _refusal(margin_model(sklearn_per_column()), training_frame()) == (
        "output probabilities[:, 1] gives scores from 2.1732 to 10.1438 on the sample; a fraud "
        "score must be a probability in [0, 1] (add a sigmoid to the graph, or choose another "
        "--output or --column)"
    )
    assert _refusal(sklearn_per_column(), training_frame(), DraftOptions(output="nope")) == (
        "the model has no output 'nope' (outputs: label, probabilities)"
    )


def test_rates_and_sample_sizes() -> None:
    model, frame = sklearn_per_column(), training_frame()
    assert _refusal(model, frame, DraftOptions(block_rate=0.001)) == (
        "the sample has 400 rows: too few to place a block rate of 0.001 (at least 1000 rows)"
    )
    assert _refusal(model, frame, DraftOptions(block_rate=0.2, review_rate=0.1)) == (
        "rates must satisfy 0 < block rate <= review rate < 1; got block 0.2, review 0.1"
    )
    assert _refusal(model, frame[:8], DraftOptions(block_rate=0.2, review_rate=0.5)) == (
        "the sample has 8 rows; a manifest needs at least 10 golden examples"
    )


def test_unreadable_samples(tmp_path: Path) -> None:
    with pytest.raises(DraftError) as caught:
        read_sample(tmp_path / "missing.csv")
    assert (
        str(caught.value)
        == f"cannot read sample {tmp_path / 'missing.csv'}: No such file or directory"
    )
    (tmp_path / "rows.txt").write_text("a,b\n1,2\n")
    with pytest.raises(DraftError) as caught:
        read_sample(tmp_path / "rows.txt")
    assert str(caught.value) == f"sample {tmp_path / 'rows.txt'}: expected a .csv or .parquet file"
    (tmp_path / "empty.csv").write_text("a,b\n")
    with pytest.raises(DraftError) as caught:
        read_sample(tmp_path / "empty.csv")
    assert str(caught.value) == f"sample {tmp_path / 'empty.csv'} has no rows"
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(DraftError) as caught:
        read_sample(tmp_path / "bad.parquet")
    assert str(caught.value).startswith(f"cannot read sample {tmp_path / 'bad.parquet'}: ")


def test_the_amount_field_must_be_a_numeric_field() -> None:
    model, frame = sklearn_per_column(), training_frame()
    assert _refusal(model, frame, DraftOptions(amount_field="channel")) == (
        "the draft is not valid: (top level): Value error, amount_field 'channel' is a "
        "categorical field; it must name a float or int field"
    )
    assert _refusal(model, frame, DraftOptions(amount_field="amount")) == (
        "the draft is not valid: (top level): Value error, amount_field 'amount' is not a field "
        "of the input schema (fields: amount_usd, account_age_days, foreign_card, "
        "merchant_country, channel, device_os)"
    )
    frame = frame.rename(columns={"amount_usd": "total"})
    assert _draft(lightgbm_matrix(), frame, STRINGS_LEFT_OUT).manifest.amount_field is None


def _two_outputs(width: int, names: tuple[str, str] = ("a", "b")) -> bytes:
    """A model over one float input [N, 3] with two float outputs of ``width`` columns."""
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[1], keepdims=1),
        helper.make_node("Sigmoid", ["mean"], ["p"]),
        helper.make_node("Tile", ["p", "repeats"], [names[0]]),
        helper.make_node("Identity", [names[0]], [names[1]]),
    ]
    graph = helper.make_graph(
        nodes,
        "two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, width]) for n in names],
        [helper.make_tensor("repeats", TensorProto.INT64, [2], [1, width])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return bytes(model.SerializeToString())


def test_choosing_the_output_and_its_column() -> None:
    frame = training_frame()
    assert _refusal(_two_outputs(1), frame, STRINGS_LEFT_OUT) == (
        "cannot tell which output holds the probability (outputs: a, b); pass --output"
    )
    chosen = _draft(_two_outputs(1), frame, replace(STRINGS_LEFT_OUT, output="b"))
    assert chosen.manifest.output == OutputSpec(name="b")
    named = _draft(_two_outputs(1, ("score", "fraud_probability")), frame, STRINGS_LEFT_OUT)
    assert named.manifest.output == OutputSpec(name="fraud_probability")
    assert _refusal(_two_outputs(3), frame, replace(STRINGS_LEFT_OUT, output="a")) == (
        "output 'a' has shape ['N', 3]; pass --column to choose the column holding the "
        "probability of fraud"
    )
    third = _draft(_two_outputs(3), frame, replace(STRINGS_LEFT_OUT, output="a", column=2))
    assert third.manifest.output == OutputSpec(name="a", column=2)
