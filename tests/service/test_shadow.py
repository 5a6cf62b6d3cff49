"""Shadow logic: sampling, per-shadow results and errors, the record's shape, the dispatcher."""

from __future__ import annotations

import random
import time

import orjson
import pytest

from registry.manifest import InputSchema
from registry.records import decode_score
from service.dispatcher import ShadowDispatcher
from service.live import LiveModels, ModelSet, ShadowSlot
from service.metrics import ServiceMetrics
from service.models import LoadedModel, load_model
from service.shadow import Scored, ShadowRunner, build_record, sample
from tests.factories import DEFAULT_SCHEMA, logistic_model, make_manifest, random_rows
from tests.service.conftest import FailingModel, HangingModel, build, sample_value, variant

ROWS = random_rows(n=6, seed=11)


def scored(production: LoadedModel, n: int = 6) -> list[Scored]:
    out = []
    for i, row in enumerate(ROWS[:n]):
        feeds = production.encode([row])
        score = float(production.run(feeds)[0])
        decision = production.decide(score).value
        out.append(Scored(f"t{i}", f"r{i}", 1.7e9, row, production, score, decision, 0.05, feeds))
    return out


def test_sampling_follows_each_rate() -> None:
    prod = build("v1")
    slots = (ShadowSlot(prod, 1.0), ShadowSlot(prod, 0.25))
    always, quarter = sample(slots, 4000, random.Random(1))
    assert always == list(range(4000))
    assert 850 < len(quarter) < 1150
    assert quarter == sorted(set(quarter))


def test_shadows_score_their_rows_and_records_decode(metrics: ServiceMetrics) -> None:
    prod, challenger = build("v1"), build("v2", bias=-1.0)
    batch = scored(prod)
    runner = ShadowRunner(metrics, budget_s=5.0)
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
    assert sample_value(metrics, "shadowline_inference_duration_seconds_count",
                        {"role": "shadow", "version": "v2"}) == 1  # fmt: skip


def test_a_raising_shadow_is_an_error_on_its_records_only(metrics: ServiceMetrics) -> None:
    prod, good = build("v1"), build("v2")
    model = logistic_model()
    broken = variant(FailingModel, make_manifest(model, version="v3"), model)
    runner = ShadowRunner(metrics, budget_s=5.0)
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
    assert (
        sample_value(metrics, "shadowline_shadow_errors_total", {"version": "v3", "kind": "error"})
        == 6
    )


def test_a_hanging_shadow_times_out_then_is_busy_and_others_go_on(metrics: ServiceMetrics) -> None:
    prod, good = build("v1"), build("v2")
    model = logistic_model()
    hanging = variant(HangingModel, make_manifest(model, version="v9"), model)
    HangingModel.release.clear()
    runner = ShadowRunner(metrics, budget_s=0.05)
    slots = (ShadowSlot(hanging, 1.0), ShadowSlot(good, 1.0))
    try:
        first = runner.run(slots, scored(prod, 2), random.Random(0))
        second = runner.run(slots, scored(prod, 2), random.Random(0))
    finally:
        HangingModel.release.set()
        runner.close()
    assert [e[0]["error"] for e in first] == ["timeout: no result within 50 ms"] * 2
    assert [e[0]["error"] for e in second] == ["busy: its previous batch is still running"] * 2
    assert all(e[1]["error"] is None and e[1]["score"] is not None for e in first + second)


def test_a_shadow_with_another_schema_checks_rows_itself(metrics: ServiceMetrics) -> None:
    prod = build("v1")
    wider = InputSchema(fields=(*DEFAULT_SCHEMA.fields, DEFAULT_SCHEMA.fields[0].model_copy(
        update={"name": "velocity_1h"})))  # fmt: skip
    model = logistic_model(wider, weights=[0.001] * 5)
    shadow = load_model(make_manifest(model, version="v5", schema=wider), model)
    runner = ShadowRunner(metrics, budget_s=5.0)
    batch = scored(prod, 2)
    batch[1].inputs = {**batch[1].inputs, "velocity_1h": 3.0}
    entries = runner.run((ShadowSlot(shadow, 1.0),), batch, random.Random(0))
    runner.close()
    assert entries[0][0]["error"] == "input: velocity_1h: is required"
    assert entries[1][0]["error"] is None


def test_dispatcher_sends_one_record_per_request(metrics: ServiceMetrics) -> None:
    prod, challenger = build("v1"), build("v2")
    live = LiveModels(ModelSet(1, prod, (ShadowSlot(challenger, 0.5),)))
    sent: list[tuple[bytes, bytes]] = []
    dispatcher = ShadowDispatcher(
        live, lambda k, v: sent.append((k, v)), metrics, queue_size=100, budget_s=1.0, seed=4
    )
    dispatcher.start()
    for item in scored(prod) * 5:
        dispatcher.submit(item)
    assert dispatcher.drain()
    dispatcher.stop()
    assert len(sent) == 30
    records = [decode_score(value) for _, value in sent]
    assert [key for key, _ in sent] == [r.transaction_id.encode() for r in records]
    sampled = sum(len(r.shadows) for r in records)
    assert 5 <= sampled <= 25  # about half of 30 were sampled
    assert sample_value(metrics, "shadowline_records_total") == 30


def test_dispatcher_sheds_when_full(metrics: ServiceMetrics) -> None:
    prod = build("v1")
    dispatcher = ShadowDispatcher(LiveModels(ModelSet(1, prod)), lambda k, v: None, metrics,
                                  queue_size=3, budget_s=1.0)  # fmt: skip
    for item in scored(prod):  # not started: nothing drains
        dispatcher.submit(item)
    assert sample_value(metrics, "shadowline_shadow_shed_total") == 3
    assert sample_value(metrics, "shadowline_shadow_queue_depth") == 3
    dispatcher.start()
    assert dispatcher.drain()
    dispatcher.stop()
    assert sample_value(metrics, "shadowline_shadow_queue_depth") == 0


def test_dispatcher_survives_a_failing_sink(metrics: ServiceMetrics) -> None:
    prod = build("v1")
    calls: list[int] = []

    def publish(key: bytes, value: bytes) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("sink broke")

    dispatcher = ShadowDispatcher(LiveModels(ModelSet(1, prod)), publish, metrics,
                                  queue_size=10, budget_s=1.0, batch_wait_s=0)  # fmt: skip
    dispatcher.start()
    items = scored(prod, 1)
    dispatcher.submit(items[0])
    assert dispatcher.drain()
    time.sleep(0.01)
    dispatcher.submit(items[0])
    assert dispatcher.drain()
    dispatcher.stop()
    assert len(calls) == 2
