"""The data plane without HTTP: bytes in, bytes out, one record per scored transaction."""

from __future__ import annotations

import orjson
import pytest

from service.errors import InvalidRequest, NoProductionModel
from service.live import LiveModels, ModelSet
from service.metrics import ServiceMetrics
from service.models import load_model
from service.scorer import Scorer
from service.shadow import Scored
from tests.factories import NUMERIC_SCHEMA, logistic_model, make_manifest, random_rows
from tests.service.helpers import build, sample_value

ROW = random_rows(n=1)[0]


def make_scorer(metrics: ServiceMetrics, *, loaded: bool = True) -> tuple[Scorer, list[Scored]]:
    submitted: list[Scored] = []
    live = LiveModels(ModelSet(3, build("v1") if loaded else None))
    return Scorer(live, submitted.append, metrics, model_name="fraud", max_batch=3), submitted


def problems(scorer: Scorer, body: object, *, batch: bool = False) -> list[str]:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    with pytest.raises(InvalidRequest) as info:
        (scorer.score_batch if batch else scorer.score)(raw)
    return info.value.problems


def test_score_returns_the_production_answer_and_submits_it(metrics: ServiceMetrics) -> None:
    scorer, submitted = make_scorer(metrics)
    row = {**ROW, "extra_field": "kept for replay"}
    answer = orjson.loads(scorer.score(orjson.dumps({"transaction_id": "t-1", "features": row})))
    assert answer["transaction_id"] == "t-1"
    assert answer["model_name"] == "fraud"
    assert answer["model_version"] == "v1"
    assert 0.0 <= answer["score"] <= 1.0
    assert answer["decision"] in {"allow", "review", "block"}
    [item] = submitted
    assert item.request_id == answer["request_id"]
    assert item.inputs == row
    assert (item.score, item.decision) == (answer["score"], answer["decision"])
    labels = {"role": "production", "version": "v1", "decision": answer["decision"]}
    assert sample_value(metrics, "shadowline_decisions_total", labels) == 1


def test_request_ids_are_unique(metrics: ServiceMetrics) -> None:
    scorer, _ = make_scorer(metrics)
    body = orjson.dumps({"transaction_id": "t-1", "features": ROW})
    ids = {orjson.loads(scorer.score(body))["request_id"] for _ in range(50)}
    assert len(ids) == 50


def test_every_bad_field_is_named(metrics: ServiceMetrics) -> None:
    scorer, submitted = make_scorer(metrics)
    features = {**ROW, "amount": -1, "country": "FR", "card_age_days": "12"}
    del features["is_foreign"]
    body = {"transaction_id": "", "features": features}
    assert problems(scorer, body) == [
        "transaction_id: must be a non-empty string of at most 128 characters",
        "amount: must be >= 0 (got -1)",
        "card_age_days: must be a number",
        "is_foreign: is required",
        "country: 'FR' is not an allowed value (US, GB, DE, BR)",
    ]
    assert submitted == []


def test_malformed_bodies_are_422(metrics: ServiceMetrics) -> None:
    scorer, _ = make_scorer(metrics)
    assert problems(scorer, b"{not json") == [
        "body: invalid JSON (unexpected character, expected a string key: line 1 column 2 (char 1))"
    ]
    # JSON has no NaN or infinity; a number too large for a double is refused by the parser.
    assert problems(scorer, b'{"transaction_id": "t", "features": {"amount": 1e999}}') == [
        "body: invalid JSON (number is infinity when parsed as double: line 1 column 48 (char 47))"
    ]
    assert problems(scorer, [1, 2]) == ["body: must be a JSON object, not an array"]
    assert problems(scorer, {"features": ROW}) == ["transaction_id: is required"]
    assert problems(scorer, {"transaction_id": 7, "features": "x"}) == [
        "transaction_id: must be a non-empty string of at most 128 characters",
        "features: must be a JSON object, not a string",
    ]
    assert problems(scorer, {"transaction_id": "t"}) == ["features: is required"]


def test_no_production_model_is_503_with_a_reason(metrics: ServiceMetrics) -> None:
    scorer, _ = make_scorer(metrics, loaded=False)
    with pytest.raises(NoProductionModel) as info:
        scorer.score(orjson.dumps({"transaction_id": "t", "features": ROW}))
    assert str(info.value) == (
        "no production model is loaded for 'fraud': promote a version "
        "(shadowline models promote) or wait until the scorer has loaded it"
    )


def test_batch_scores_each_transaction(metrics: ServiceMetrics) -> None:
    scorer, submitted = make_scorer(metrics)
    rows = random_rows(n=3, seed=3)
    body = {
        "transactions": [{"transaction_id": f"t{i}", "features": r} for i, r in enumerate(rows)]
    }
    answer = orjson.loads(scorer.score_batch(orjson.dumps(body)))
    assert [r["transaction_id"] for r in answer["results"]] == ["t0", "t1", "t2"]
    assert answer["model_version"] == "v1"
    assert [s.transaction_id for s in submitted] == ["t0", "t1", "t2"]
    assert {s.request_id for s in submitted} == {answer["request_id"]}
    single = orjson.loads(scorer.score(orjson.dumps(body["transactions"][1])))
    assert answer["results"][1]["score"] == pytest.approx(single["score"])


def test_batch_problems_name_the_transaction(metrics: ServiceMetrics) -> None:
    scorer, _ = make_scorer(metrics)
    good = {"transaction_id": "ok", "features": ROW}
    bad = {"transaction_id": "bad", "features": {**ROW, "amount": "12"}}
    assert problems(scorer, {"transactions": [good, bad, 5]}, batch=True) == [
        "transactions[1]: amount: must be a number",
        "transactions[2]: must be a JSON object, not a number",
    ]
    assert problems(scorer, {"transactions": []}, batch=True) == [
        "transactions: must be a non-empty array"
    ]


def test_batch_over_the_limit_is_422(metrics: ServiceMetrics) -> None:
    scorer, _ = make_scorer(metrics)
    body = {"transactions": [{"transaction_id": "t", "features": ROW}] * 4}
    with pytest.raises(InvalidRequest) as info:
        scorer.score_batch(orjson.dumps(body))
    assert info.value.problems == ["transactions: a batch of 4 transactions exceeds the limit of 3"]


def test_unknown_features_must_be_scalars(metrics: ServiceMetrics) -> None:
    # Kept for replay, so they must be writable again: orjson reads nesting 1024 deep but
    # writes only ~254, and a record that cannot be written took its whole batch with it.
    scorer, submitted = make_scorer(metrics)
    good = {"transaction_id": "ok", "features": {**ROW, "note": "scalar", "n": None}}
    bad = {"transaction_id": "evil", "features": {**ROW, "note": "DEEP", "tags": {"a": 1}}}
    body = orjson.dumps({"transactions": [bad, good]}).replace(b'"DEEP"', b"[" * 300 + b"]" * 300)
    assert problems(scorer, body, batch=True) == [
        "transactions[0]: note: must be a number, string, boolean or null",
        "transactions[0]: tags: must be a number, string, boolean or null",
    ]
    assert problems(scorer, {"transaction_id": "t", "features": {**ROW, "note": [1]}}) == [
        "note: must be a number, string, boolean or null"
    ]
    # A model field of the wrong type is named once, by the schema check.
    assert problems(scorer, {"transaction_id": "t", "features": {**ROW, "amount": [1]}}) == [
        "amount: must be a number"
    ]
    assert submitted == []
    scorer.score_batch(orjson.dumps({"transactions": [good]}))
    assert [s.inputs["note"] for s in submitted] == ["scalar"]


FULL_ROW = {"amount": 12.5, "card_age_days": 30, "is_foreign": True, "device_age_days": 3.0}


def numeric_scorer(metrics: ServiceMetrics) -> tuple[Scorer, list[Scored]]:
    """A scorer whose production model has numeric fields only (the shortcut's layout)."""
    model = logistic_model(NUMERIC_SCHEMA)
    production = load_model(make_manifest(model, schema=NUMERIC_SCHEMA), model)
    submitted: list[Scored] = []
    live = LiveModels(ModelSet(1, production))
    return Scorer(live, submitted.append, metrics, model_name="fraud", max_batch=3), submitted


def test_complete_numeric_rows_score_as_the_full_check_scores_them(
    metrics: ServiceMetrics,
) -> None:
    # A complete row of a numeric-only model takes the shortcut (RowCodec.numeric_row); an
    # extra key sends the same row through the full check.
    scorer, submitted = numeric_scorer(metrics)
    short = orjson.loads(scorer.score(orjson.dumps({"transaction_id": "a", "features": FULL_ROW})))
    extra = {**FULL_ROW, "note": "x"}
    long = orjson.loads(scorer.score(orjson.dumps({"transaction_id": "b", "features": extra})))
    assert short["score"] == long["score"]
    transactions = [
        {"transaction_id": "c", "features": FULL_ROW},
        {"transaction_id": "d", "features": {**FULL_ROW, "amount": 990.5}},
    ]
    batch = orjson.loads(scorer.score_batch(orjson.dumps({"transactions": transactions})))
    assert batch["results"][0]["score"] == pytest.approx(short["score"])
    assert [s.transaction_id for s in submitted] == ["a", "b", "c", "d"]
    assert [s.inputs for s in submitted[:2]] == [FULL_ROW, extra]
    calls = {"role": "production", "version": "v1"}
    assert sample_value(metrics, "shadowline_inference_duration_seconds_count", calls) == 3


def test_bad_numeric_rows_are_named_by_the_full_check(metrics: ServiceMetrics) -> None:
    scorer, submitted = numeric_scorer(metrics)
    body = {"transaction_id": "t", "features": {**FULL_ROW, "amount": -1}}
    assert problems(scorer, body) == ["amount: must be >= 0 (got -1)"]
    assert problems(scorer, {"transaction_id": "x" * 129, "features": FULL_ROW}) == [
        "transaction_id: must be a non-empty string of at most 128 characters"
    ]
    bad = {"transaction_id": "bad", "features": {**FULL_ROW, "is_foreign": 1}}
    good = {"transaction_id": "ok", "features": FULL_ROW}
    assert problems(scorer, {"transactions": [good, bad]}, batch=True) == [
        "transactions[1]: is_foreign: must be true or false"
    ]
    assert submitted == []
