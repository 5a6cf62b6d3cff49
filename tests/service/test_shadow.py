"""Shadow logic: sampling, per-shadow results and errors, the record's shape (no services)."""

from __future__ import annotations

import random

import orjson
import pytest

from registry.manifest import InputSchema
from registry.records import decode_score
from service.live import ShadowSlot
from service.models import load_model
from service.shadow import ShadowRunner, build_record, sample
from service.tally import Tally
from tests.factories import DEFAULT_SCHEMA, logistic_model, make_manifest
from tests.service.helpers import (
    FailingModel,
    HangingModel,
    SlowModel,
    SpinningModel,
    build,
    scored,
    variant,
)


def test_sampling_follows_each_rate() -> None:
    prod = build("v1")
    slots = (ShadowSlot(prod, 1.0), ShadowSlot(prod, 0.25))
    always, quarter = sample(slots, 4000, random.Random(1))
    assert always == list(range(4000))
    assert 850 < len(quarter) < 1150
    assert quarter == sorted(set(quarter))


def test_shadows_score_their_rows_and_records_decode() -> None:
    prod, challenger = build("v1"), build("v2", bias=-1.0)
    batch = scored(prod)
    tally = Tally()
    runner = ShadowRunner(tally, budget_s=5.0)
    entries = runner.run((ShadowSlot(challenger, 1.0),), batch, random.Random(0))
    runner.close()
    for item, shadows in zip(batch, entries, strict=True):
        record = decode_score(orjson.dumps(build_record(item, shadows)))
        [shadow] = record.shadows
        assert shadow.version == "v2"
        assert shadow.error is None
        assert shadow.score == pytest.approx(float(challenger.score([item.inputs])[0]))
        assert record.production.version == "v1"
        assert record.production.score == item.score
        assert record.inputs == item.inputs
    assert sum(tally.inference["v2"].counts) == 1  # one call for the batch
    assert sum(tally.scores["v2"].counts) == 6
    assert sum(tally.decisions.values()) == 6


def test_a_raising_shadow_is_an_error_on_its_records_only() -> None:
    prod, good = build("v1"), build("v2")
    model = logistic_model()
    broken = variant(FailingModel, make_manifest(model, version="v3"), model)
    tally = Tally()
    runner = ShadowRunner(tally, budget_s=5.0)
    entries = runner.run(
        (ShadowSlot(broken, 1.0), ShadowSlot(good, 1.0)), scored(prod), random.Random(0)
    )
    runner.close()
    for shadows in entries:
        assert shadows[0] == {
            "version": "v3",
            "score": None,
            "decision": None,
            "latency_ms": None,
            "error": "error: RuntimeError: model exploded",
        }
        assert shadows[1]["error"] is None
    assert tally.shadow_errors == {("v3", "error"): 6}


def test_a_hanging_shadow_times_out_then_is_busy_and_others_go_on() -> None:
    prod, good = build("v1"), build("v2")
    model = logistic_model()
    hanging = variant(HangingModel, make_manifest(model, version="v9"), model)
    HangingModel.release.clear()
    runner = ShadowRunner(Tally(), budget_s=0.05, wait_s=0.2)
    slots = (ShadowSlot(hanging, 1.0), ShadowSlot(good, 1.0))
    try:
        first = runner.run(slots, scored(prod, 2), random.Random(0))
        second = runner.run(slots, scored(prod, 2), random.Random(0))
    finally:
        HangingModel.release.set()
        runner.close()
    assert [e[0]["error"] for e in first] == ["timeout: no result within 200 ms"] * 2
    assert [e[0]["error"] for e in second] == ["busy: its previous batch is still running"] * 2
    assert all(e[1]["error"] is None and e[1]["score"] is not None for e in first + second)


def test_a_shadow_burning_cpu_beyond_its_budget_times_out() -> None:
    prod, good = build("v1"), build("v2")
    model = logistic_model()
    spinning = variant(SpinningModel, make_manifest(model, version="v8"), model)
    SpinningModel.release.clear()
    tally = Tally()
    runner = ShadowRunner(tally, budget_s=0.05, wait_s=8.0)
    try:
        entries = runner.run(
            (ShadowSlot(spinning, 1.0), ShadowSlot(good, 1.0)), scored(prod, 2), random.Random(0)
        )
    finally:
        SpinningModel.release.set()
        runner.close()
    for shadows in entries:
        assert shadows[0]["error"].startswith("timeout: it used ")
        assert shadows[0]["error"].endswith(" ms of CPU, over its 50 ms")
        assert shadows[1]["error"] is None
    assert tally.shadow_errors == {("v8", "timeout"): 2}


def test_waiting_for_the_cpu_is_not_a_timeout() -> None:
    # A call that takes longer than its CPU budget on the clock but uses little CPU (its
    # thread waited: a busy machine) is scored, not given up.
    prod = build("v1")
    model = logistic_model()
    slow = variant(SlowModel, make_manifest(model, version="v7"), model)
    tally = Tally()
    runner = ShadowRunner(tally, budget_s=0.02, wait_s=8.0)
    entries = runner.run((ShadowSlot(slow, 1.0),), scored(prod, 3), random.Random(0))
    runner.close()
    assert [e[0]["error"] for e in entries] == [None] * 3
    assert [e[0]["score"] is not None for e in entries] == [True] * 3
    assert tally.shadow_errors == {}
    assert sum(tally.scores["v7"].counts) == 3


def test_a_share_of_the_rows_is_shed_the_same_for_every_shadow() -> None:
    prod, v2, v3 = build("v1"), build("v2"), build("v3", bias=-1.0)
    tally = Tally()
    runner = ShadowRunner(tally, budget_s=5.0)
    batch = scored(prod) * 20  # 120 rows
    rare = build("v4")  # sampled on no row here: no entry, and no count of 0 either
    slots = (ShadowSlot(v2, 1.0), ShadowSlot(v3, 1.0), ShadowSlot(rare, 1e-9))
    entries = runner.run(slots, batch, random.Random(4), shed="700 ms behind", shed_share=0.5)
    runner.close()
    shed = [i for i, e in enumerate(entries) if e[0]["error"] == "shed: 700 ms behind"]
    assert 30 < len(shed) < 90
    for i, (first, second) in enumerate(entries):
        assert [first["version"], second["version"]] == ["v2", "v3"]
        if i in shed:
            assert second["error"] == "shed: 700 ms behind"
        else:
            assert first["error"] is None
            assert second["error"] is None
    assert tally.shadow_errors == {("v2", "shed"): len(shed), ("v3", "shed"): len(shed)}
    assert sum(tally.scores["v2"].counts) == 120 - len(shed)
    assert sum(sum(h.counts) for h in tally.inference.values()) == 2  # one call per shadow


def test_a_shadow_with_another_schema_checks_rows_itself() -> None:
    prod = build("v1")
    wider = InputSchema(
        fields=(
            *DEFAULT_SCHEMA.fields,
            DEFAULT_SCHEMA.fields[0].model_copy(update={"name": "velocity_1h"}),
        )
    )
    model = logistic_model(wider, weights=[0.001] * 5)
    shadow = load_model(make_manifest(model, version="v5", schema=wider), model)
    tally = Tally()
    runner = ShadowRunner(tally, budget_s=5.0)
    batch = scored(prod, 2)
    batch[1] = batch[1]._replace(inputs={**batch[1].inputs, "velocity_1h": 3.0})
    entries = runner.run((ShadowSlot(shadow, 1.0),), batch, random.Random(0))
    runner.close()
    assert entries[0][0]["error"] == "input: velocity_1h: is required"
    assert entries[1][0]["error"] is None
    assert tally.shadow_errors == {("v5", "input"): 1}


def test_rows_checked_against_the_same_schema_are_not_checked_again() -> None:
    # Production checked the row; a shadow with an equal schema only encodes it.  (A row
    # that claims production's schema key but breaks it would fail to encode, so the key,
    # not a second check, is what lets it through: here the key says "another schema".)
    prod, challenger = build("v1"), build("v2")
    assert prod.schema_key == challenger.schema_key
    batch = scored(prod, 2)
    broken = {k: v for k, v in batch[0].inputs.items() if k != "amount"}
    batch[0] = batch[0]._replace(inputs=broken, schema_key="another schema")
    entries = ShadowRunner(Tally(), budget_s=5.0).run(
        (ShadowSlot(challenger, 1.0),), batch, random.Random(0)
    )
    assert entries[0][0]["error"] == "input: amount: is required"
    assert entries[1][0]["error"] is None


def test_a_shed_batch_runs_no_shadow_and_says_why() -> None:
    prod, challenger = build("v1"), build("v2")
    tally = Tally()
    runner = ShadowRunner(tally, budget_s=5.0)
    slots = (ShadowSlot(challenger, 1.0), ShadowSlot(prod, 0.5))
    entries = runner.run(slots, scored(prod), random.Random(3), shed="1500 ms behind")
    runner.close()
    assert [e[0] for e in entries] == [
        {
            "version": "v2",
            "score": None,
            "decision": None,
            "latency_ms": None,
            "error": "shed: 1500 ms behind",
        },
    ] * 6
    sampled = sum(len(e) - 1 for e in entries)  # v1 at 50%: only sampled rows get an entry
    assert tally.shadow_errors == {("v2", "shed"): 6, ("v1", "shed"): sampled}
    assert tally.inference == {}
