"""The sidecar against the real broker: shadows and records reach the topic, counts come back,
and without a broker the queue stays bounded and every transaction is accounted for."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from registry.records import ScoreRecord
from service.live import LiveModels, ModelSet, ShadowSlot
from service.metrics import ServiceMetrics
from service.models import ModelBytes, load_model
from service.producer import ProducerConfig, broker_accepts
from service.shadow import Scored
from service.sidecar import Sidecar
from service.sidecar_loop import ShadowLoader, SidecarConfig
from shadowline.stack import ensure_topics, free_port
from tests.service.helpers import (
    SLOW_LOAD_S,
    build,
    sample_value,
    scored,
    slow_load,
    wait_until,
)
from tests.service.kafka_helpers import read_records
from tests.service.processes import dedicated


def make_sidecar(
    metrics: ServiceMetrics,
    servers: tuple[str, ...],
    topic: str,
    live: LiveModels | None = None,
    *,
    queue_size: int = 100,
    in_process: bool = True,
    on_load_failure: Callable[[str, str], None] | None = None,
    load: ShadowLoader = load_model,
    batch_max: int = 128,
    batch_wait_s: float = 0.001,
    **config: Any,
) -> Sidecar:
    producer = ProducerConfig(servers=servers, topic=topic, max_in_flight=1000)
    return Sidecar(
        SidecarConfig(producer, stats_interval_s=0.05, seed=1, **config),
        live or LiveModels(ModelSet(1, build("v1"))),
        metrics,
        queue_size=queue_size,
        batch_max=batch_max,
        batch_wait_s=batch_wait_s,
        in_process=in_process,
        load=load,
        on_load_failure=on_load_failure,
    )


def no_broker() -> tuple[str, ...]:
    servers = (f"127.0.0.1:{free_port()}",)
    assert not broker_accepts(servers)
    return servers


def submit_all(sidecar: Sidecar, items: list[Scored], prefix: str = "t") -> None:
    for n, item in enumerate(items):
        sidecar.submit(item._replace(transaction_id=f"{prefix}{n}"))


def test_transactions_reach_the_topic_with_shadow_scores(
    kafka_bootstrap: str, make_topic: Callable[..., str], metrics: ServiceMetrics
) -> None:
    prod, challenger = build("v1"), build("v2", bias=-1.0)
    live = LiveModels(ModelSet(1, prod, (ShadowSlot(ModelBytes.of(challenger), 1.0),)))
    topic = make_topic("scores")
    sidecar = make_sidecar(metrics, (kafka_bootstrap,), topic, live)
    sidecar.start()
    assert wait_until(lambda: sidecar.shadows_loaded() == ("v2",))  # loads run beside
    items = scored(prod) * 2
    submit_all(sidecar, items)
    records = read_records(kafka_bootstrap, topic, until=lambda r: len(r) >= 12)
    assert wait_until(lambda: sample_value(metrics, "shadowline_kafka_sent_total") == 12)
    sidecar.close()
    by_id = {r.transaction_id: r for r in records}
    assert sorted(by_id) == sorted(f"t{n}" for n in range(12))
    for n, item in enumerate(items):
        record = by_id[f"t{n}"]
        assert record.production.version == "v1"
        assert record.production.score == item.score
        assert record.inputs == item.inputs
        [shadow] = record.shadows
        assert shadow.version == "v2"
        assert shadow.error is None
        assert shadow.score == pytest.approx(float(challenger.score([item.inputs])[0]))
    # The sidecar's counts are the scorer's metrics.
    assert sample_value(metrics, "shadowline_records_total") == 12
    assert sample_value(metrics, "shadowline_kafka_producer_restarts_total") == 1
    role = {"role": "shadow", "version": "v2"}
    assert sample_value(metrics, "shadowline_score_count", role) == 12
    assert sample_value(metrics, "shadowline_inference_duration_seconds_count", role) >= 1
    decided = sum(
        sample_value(metrics, "shadowline_decisions_total", {**role, "decision": d})
        for d in ("allow", "review", "block")
    )
    assert decided == 12


def test_the_sidecar_process_delivers_and_reports(
    kafka_bootstrap: str, make_topic: Callable[..., str], metrics: ServiceMetrics
) -> None:
    prod, challenger = build("v1"), build("v2", bias=-1.0)
    live = LiveModels(ModelSet(1, prod, (ShadowSlot(ModelBytes.of(challenger), 1.0),)))
    topic = make_topic("scores")
    sidecar = make_sidecar(metrics, (kafka_bootstrap,), topic, live, in_process=False)
    sidecar.start()
    assert wait_until(lambda: sidecar.shadows_loaded() == ("v2",))  # loads run beside
    # (Transactions that wait more than max_lag_s for the starting process skip the shadows.)
    assert wait_until(lambda: sidecar.connected)
    submit_all(sidecar, scored(prod) * 4, prefix="p")
    records = read_records(kafka_bootstrap, topic, until=lambda r: len(r) >= 24)
    assert wait_until(lambda: sample_value(metrics, "shadowline_kafka_sent_total") == 24)
    sidecar.close()
    assert len({r.transaction_id for r in records}) == 24
    assert [s.error for s in records[0].shadows] == [None]
    assert all([s.version for s in r.shadows] == ["v2"] for r in records)
    shadow = {"role": "shadow", "version": "v2"}
    assert sample_value(metrics, "shadowline_score_count", shadow) == 24


def test_a_changed_shadow_set_reaches_the_sidecar(
    kafka_bootstrap: str, make_topic: Callable[..., str], metrics: ServiceMetrics
) -> None:
    # A version the sidecar cannot load (its bytes are not ONNX) is an error entry on the
    # records, counted, costs the other shadow nothing, and is reported back to the scorer once.
    prod, challenger = build("v1"), build("v2", bias=-1.0)
    unloadable = ModelBytes(build("v3").manifest, b"not onnx", 0.0)
    live = LiveModels(ModelSet(1, prod))
    topic = make_topic("scores")
    failures: list[tuple[str, str]] = []
    sidecar = make_sidecar(
        metrics, (kafka_bootstrap,), topic, live, on_load_failure=lambda *f: failures.append(f)
    )
    sidecar.start()
    submit_all(sidecar, scored(prod, 3), prefix="before")
    assert sidecar.drain()
    assert sidecar.shadows_loaded() == ()
    shadows = (ShadowSlot(ModelBytes.of(challenger), 1.0), ShadowSlot(unloadable, 1.0))
    live.swap(ModelSet(2, prod, shadows))
    # The loads run beside the records: v2 loads, v3 fails (reported back once).
    assert wait_until(lambda: sidecar.shadows_loaded() == ("v2",) and bool(failures))
    submit_all(sidecar, scored(prod, 3), prefix="after")
    records = read_records(kafka_bootstrap, topic, until=lambda r: len(r) >= 6)
    assert wait_until(lambda: sample_value(metrics, "shadowline_kafka_sent_total") == 6)
    assert wait_until(lambda: bool(failures))
    assert sidecar.shadows_loaded() == ("v2",)  # /readyz: v3 in the set, not loaded
    submit_all(sidecar, scored(prod, 3), prefix="later")  # more reports: no second failure
    assert wait_until(lambda: sample_value(metrics, "shadowline_kafka_sent_total") == 9)
    sidecar.close()
    [(version, why)] = failures
    assert version == "v3"
    assert why.startswith("onnxruntime cannot load the artifact")
    for record in records[:6]:
        if record.transaction_id.startswith("before"):
            assert not record.shadows
            continue
        v2, v3 = sorted(record.shadows, key=lambda s: s.version)
        assert v2.version == "v2"
        assert v2.error is None
        assert v2.score is not None
        assert v3.version == "v3"
        assert v3.score is None
        assert v3.error is not None
        assert v3.error.startswith("error: the sidecar cannot load it")
    errors = {"version": "v3", "kind": "load"}  # "after" and "later": nobody left it out here
    assert sample_value(metrics, "shadowline_shadow_errors_total", errors) == 6


def test_a_challenger_loading_for_seconds_costs_production_no_record(
    kafka_bootstrap: str, make_topic: Callable[..., str], metrics: ServiceMetrics
) -> None:
    """A challenger whose load takes 2 s in the sidecar process, while production's
    transactions keep coming at about 400 a second through a queue of 100: every one becomes
    a record, none is shed or dropped; those before the load completed carry no entry for the
    challenger, those after are scored by it.  Had the load held the sidecar's loop, its
    reads would have stopped for 2 s, and the queue and the pipe (64 KiB) would have filled
    and shed most of what came meanwhile."""
    prod, challenger = build("v1"), build("v2", bias=-1.0)
    live = LiveModels(ModelSet(1, prod))
    topic = make_topic("scores")
    sidecar = make_sidecar(
        metrics, (kafka_bootstrap,), topic, live, in_process=False, load=slow_load
    )
    sidecar.start()
    assert wait_until(lambda: sidecar.connected)
    live.swap(ModelSet(2, prod, (ShadowSlot(ModelBytes.of(challenger), 1.0),)))
    items = scored(prod)
    order: list[str] = []  # transaction ids, as submitted
    swapped, loaded_after = time.monotonic(), None
    while loaded_after is None or len(order) < loaded_after + 100:
        assert time.monotonic() - swapped < SLOW_LOAD_S + 20, "the challenger never loaded"
        prefix = f"b{len(order)}-"
        now = time.time()  # scored now, as the scorer hands them over
        submit_all(sidecar, [item._replace(scored_at=now) for item in items], prefix=prefix)
        order += [f"{prefix}{n}" for n in range(len(items))]
        if loaded_after is None and sidecar.shadows_loaded() == ("v2",):
            loaded_after = len(order)
            assert time.monotonic() - swapped >= SLOW_LOAD_S  # the load took its seconds
        time.sleep(len(items) / 400)
    assert sample_value(metrics, "shadowline_shadow_shed_total") == 0
    assert sample_value(metrics, "shadowline_kafka_dropped_total") == 0
    assert loaded_after > 400  # traffic went on through the load
    sent = len(order)
    records = read_records(kafka_bootstrap, topic, until=lambda r: len(r) >= sent)
    assert wait_until(lambda: sample_value(metrics, "shadowline_kafka_sent_total") == sent)
    sidecar.close()
    by_id = {r.transaction_id: r for r in records}
    assert sorted(by_id) == sorted(order)
    assert by_id[order[0]].shadows == []  # before the challenger was loaded: no entry
    assert [s.version for s in by_id[order[-1]].shadows] == ["v2"]
    errors = [(r.transaction_id, s.error) for r in records for s in r.shadows if s.error]
    assert not errors, errors[:3]


def test_late_batches_shed_their_shadows_and_still_send_records(
    kafka_bootstrap: str, make_topic: Callable[..., str], metrics: ServiceMetrics
) -> None:
    prod, challenger = build("v1"), build("v2")
    live = LiveModels(ModelSet(1, prod, (ShadowSlot(ModelBytes.of(challenger), 1.0),)))
    topic = make_topic("scores")
    sidecar = make_sidecar(metrics, (kafka_bootstrap,), topic, live, max_lag_s=1.0)
    sidecar.start()
    assert wait_until(lambda: sidecar.shadows_loaded() == ("v2",))  # loads run beside
    submit_all(sidecar, scored(prod, 4, scored_at=time.time() - 5.0))
    records = read_records(kafka_bootstrap, topic, until=lambda r: len(r) >= 4)
    assert wait_until(lambda: sample_value(metrics, "shadowline_kafka_sent_total") == 4)
    sidecar.close()
    for record in records:
        [shadow] = record.shadows
        assert shadow.score is None
        assert shadow.error is not None
        assert shadow.error.startswith("shed: the shadows were")
    errors = {"version": "v2", "kind": "shed"}
    assert sample_value(metrics, "shadowline_shadow_errors_total", errors) == 4


def test_a_record_that_cannot_be_encoded_costs_no_other_record(
    kafka_bootstrap: str, make_topic: Callable[..., str], metrics: ServiceMetrics
) -> None:
    # Inputs orjson cannot write (nested deeper than it writes) and a transaction id that is
    # not UTF-8: each affects its own record only; the rest of the batch reaches the broker.
    prod, challenger = build("v1"), build("v2")
    items = scored(prod, 4)
    deep: list[object] = []
    for _ in range(300):
        deep = [deep]
    items[1] = items[1]._replace(inputs={**items[1].inputs, "note": deep})
    items[3] = items[3]._replace(transaction_id="t3-\ud800")
    live = LiveModels(ModelSet(1, prod, (ShadowSlot(ModelBytes.of(challenger), 1.0),)))
    topic = make_topic("scores")
    sidecar = make_sidecar(metrics, (kafka_bootstrap,), topic, live)
    sidecar.start()
    assert wait_until(lambda: sidecar.shadows_loaded() == ("v2",))  # loads run beside
    for item in items:
        sidecar.submit(item)
    records = read_records(kafka_bootstrap, topic, until=lambda r: len(r) >= 3)
    failed = "shadowline_records_failed_total"
    assert wait_until(lambda: sample_value(metrics, failed, {"kind": "lost"}) == 1)
    sidecar.close()
    by_id = {r.transaction_id: r for r in records}
    assert sorted(by_id) == ["t0", "t1", "t2"]
    assert by_id["t1"].inputs == {"_unencodable": "TypeError: Recursion limit reached"}
    assert by_id["t1"].production.score == items[1].score
    assert [s.version for s in by_id["t1"].shadows] == ["v2"]
    assert by_id["t0"].inputs == items[0].inputs
    assert sample_value(metrics, "shadowline_records_total") == 3
    assert sample_value(metrics, failed, {"kind": "unencodable_inputs"}) == 1


def test_batches_packed_by_requests_and_by_the_writer_keep_their_order(
    kafka_bootstrap: str, make_topic: Callable[..., str], metrics: ServiceMetrics
) -> None:
    # Bursts of 37 with batches of 16: the requests that complete a batch pack two in each
    # burst, the writer packs the last 5 once they have waited (40 ms, in the pause).  The
    # topic has one partition, so its order is the order the batches were handed over in.
    topic = make_topic("scores")
    sidecar = make_sidecar(
        metrics, (kafka_bootstrap,), topic, queue_size=1000, batch_max=16, batch_wait_s=0.04
    )
    sidecar.start()
    item = scored(build("v1"), 1)[0]
    sent = [f"t{n}" for n in range(8 * 37)]
    for burst in range(8):
        for tid in sent[burst * 37 : (burst + 1) * 37]:
            sidecar.submit(item._replace(transaction_id=tid))
        time.sleep(0.1)
    records = read_records(kafka_bootstrap, topic, until=lambda r: len(r) >= len(sent))
    sidecar.close()
    assert [r.transaction_id for r in records] == sent
    assert sample_value(metrics, "shadowline_shadow_shed_total") == 0


def test_a_burst_beyond_the_queue_is_shed_and_counted(
    kafka_bootstrap: str, make_topic: Callable[..., str], metrics: ServiceMetrics
) -> None:
    topic = make_topic("scores")
    sidecar = make_sidecar(metrics, (kafka_bootstrap,), topic, queue_size=5)
    sidecar.start()
    assert wait_until(lambda: sidecar.connected)
    items = scored(build("v1"), 1) * 500
    submit_all(sidecar, items)  # far faster than the writer hands over: most are shed
    assert sidecar.drain()
    shed = sample_value(metrics, "shadowline_shadow_shed_total")
    assert wait_until(lambda: sample_value(metrics, "shadowline_kafka_sent_total") == 500 - shed)
    sidecar.close()
    assert shed > 0
    assert sample_value(metrics, "shadowline_kafka_dropped_total") == 0


def test_without_a_broker_transactions_are_dropped_and_counted(metrics: ServiceMetrics) -> None:
    sidecar = make_sidecar(metrics, no_broker(), "scores", queue_size=5)
    early = scored(build("v1"), 6) + scored(build("v1"), 1)
    submit_all(sidecar, early)  # no sidecar yet: the queue takes 5, 2 are shed
    assert sample_value(metrics, "shadowline_shadow_shed_total") == 2
    sidecar.start()
    assert sidecar.running
    assert not sidecar.connected
    items = scored(build("v1")) * 500  # more than the queue and the pipe hold
    submit_all(sidecar, items)
    assert sample_value(metrics, "shadowline_kafka_dropped_total") > 0
    assert sample_value(metrics, "shadowline_shadow_shed_total") == 2  # Kafka is the reason
    sidecar.close(timeout_s=5.0)
    assert sample_value(metrics, "shadowline_kafka_sent_total") == 0
    accounted = sum(
        sample_value(metrics, name, labels)
        for name, labels in (
            ("shadowline_kafka_dropped_total", None),  # not handed over
            ("shadowline_kafka_failed_total", None),  # written off by the sidecar
            ("shadowline_records_failed_total", {"kind": "sidecar_gone"}),
        )
    )
    assert accounted == len(items) + 5


def sidecar_processes() -> list[multiprocessing.process.BaseProcess]:
    return [p for p in multiprocessing.active_children() if p.name == "shadowline-sidecar"]


def test_closing_without_a_broker_ends_the_sidecar_process(metrics: ServiceMetrics) -> None:
    # The sidecar ignores SIGINT/SIGTERM and, without a broker, never reads the pipe's stop
    # message: close() must still end it, or interpreter exit (which joins children) hangs.
    strays = set(sidecar_processes())  # an earlier test's scorer may still be shutting down
    sidecar = make_sidecar(metrics, no_broker(), "scores", queue_size=10, in_process=False)
    sidecar.start()
    submit_all(sidecar, scored(build("v1"), 4) * 2)
    assert wait_until(lambda: len(set(sidecar_processes()) - strays) == 1)
    [own] = set(sidecar_processes()) - strays
    pid = own.pid
    assert pid is not None
    # (Long enough for the process to finish starting, see the stop flag and report.)
    closing = threading.Thread(target=sidecar.close, kwargs={"timeout_s": 10.0})
    closing.start()
    closing.join(30)  # a bound on the wait, not a timing assertion
    assert not closing.is_alive()
    assert own not in sidecar_processes()
    assert not psutil.pid_exists(pid)
    assert sample_value(metrics, "shadowline_kafka_sent_total") == 0
    held = sample_value(metrics, "shadowline_kafka_dropped_total") + sample_value(
        metrics, "shadowline_kafka_failed_total"
    )
    assert held == 8  # every transaction is accounted for: dropped here or failed there


def test_the_queue_is_bounded_in_bytes(metrics: ServiceMetrics) -> None:
    # Counting transactions alone let 0.5 MB requests grow the producer by 330 MB with the
    # broker down: the byte budget drops (and counts) what does not fit.
    budget = 400_000
    producer = ProducerConfig(
        servers=no_broker(), topic="scores", max_in_flight=1000, max_in_flight_bytes=budget // 2
    )
    sidecar = Sidecar(
        SidecarConfig(producer),
        LiveModels(ModelSet(1, build("v1"))),
        metrics,
        queue_size=10_000,
        buffer_bytes=budget,
        in_process=True,
    )
    item = scored(build("v1"), 1)[0]._replace(size=20_000)
    submit_all(sidecar, [item] * 30)  # not started yet: the queue takes half the budget
    assert sidecar.queued_bytes == 10 * 20_000
    assert sample_value(metrics, "shadowline_kafka_buffered_bytes") == 10 * 20_000
    assert sample_value(metrics, "shadowline_shadow_shed_total") == 20
    sidecar.start()
    try:
        for n in range(100):  # 2 MB more, five times the budget
            sidecar.submit(item._replace(transaction_id=f"more{n}"))
            assert sidecar.queued_bytes <= budget // 2
            # (The writer thread moves bytes along meanwhile: each reading on its own.)
            assert sample_value(metrics, "shadowline_kafka_buffered_bytes") <= budget
            assert sidecar.buffered_bytes <= budget
        assert sample_value(metrics, "shadowline_kafka_dropped_total") > 20
    finally:
        sidecar.close(timeout_s=1.0)
    assert sample_value(metrics, "shadowline_kafka_sent_total") == 0
    assert sidecar.queued_bytes == 0


def test_records_decode_as_the_wire_format(
    kafka_bootstrap: str, make_topic: Callable[..., str], metrics: ServiceMetrics
) -> None:
    topic = make_topic("scores")
    sidecar = make_sidecar(metrics, (kafka_bootstrap,), topic)
    sidecar.start()
    submit_all(sidecar, scored(build("v1"), 2))
    records: list[ScoreRecord] = read_records(kafka_bootstrap, topic, until=lambda r: len(r) >= 2)
    sidecar.close()
    assert {r.model_name for r in records} == {"fraud"}
    assert all(r.request_id.startswith("r") for r in records)


def accounted(metrics: ServiceMetrics) -> float:
    """Every fate a handed-over transaction can have, summed."""
    return sum(
        sample_value(metrics, name, labels)
        for name, labels in (
            ("shadowline_kafka_sent_total", None),
            ("shadowline_kafka_failed_total", None),
            ("shadowline_kafka_dropped_total", None),
            ("shadowline_shadow_shed_total", None),
            ("shadowline_records_failed_total", {"kind": "lost"}),
            ("shadowline_records_failed_total", {"kind": "sidecar_gone"}),
        )
    )


@pytest.mark.slow
def test_records_flow_again_when_the_broker_comes_back_late(
    metrics: ServiceMetrics, tmp_path: Path
) -> None:
    # With the broker away the sidecar stops reading batches and the writer blocks; its
    # snapshots (here every 5 ms, hundreds of them) must not fill a pipe nobody reads, or
    # both sides wait on each other for good.
    port = free_port()
    producer = ProducerConfig(
        servers=(f"127.0.0.1:{port}",), topic="scores.late", max_in_flight=1000
    )
    sidecar = Sidecar(
        SidecarConfig(producer, stats_interval_s=0.005),
        LiveModels(ModelSet(1, build("v1"))),
        metrics,
        queue_size=50,
        batch_wait_s=0.001,
        in_process=True,
    )
    sidecar.start()
    item = scored(build("v1"), 1)[0]
    submit_all(sidecar, [item] * 3000)
    time.sleep(2.0)  # ~400 snapshots while nothing is delivered
    assert sample_value(metrics, "shadowline_kafka_dropped_total") > 0
    with dedicated("kafka", port, tmp_path / "broker.log") as broker:
        ensure_topics(port, ["scores.late"], partitions=1)
        assert wait_until(lambda: sidecar.connected, 30)
        submit_all(sidecar, [item] * 20, prefix="after")
        records = read_records(
            broker.address,
            "scores.late",
            timeout_s=30,
            until=lambda r: any(x.transaction_id == "after19" for x in r),
        )
        sidecar.close()
    assert "after19" in {r.transaction_id for r in records}
    assert accounted(metrics) == 3020


def test_a_killed_sidecar_is_replaced_and_what_it_held_is_counted(
    kafka_bootstrap: str, make_topic: Callable[..., str], metrics: ServiceMetrics
) -> None:
    topic = make_topic("scores")
    strays = set(sidecar_processes())  # an earlier test's scorer may still be shutting down
    sidecar = make_sidecar(metrics, (kafka_bootstrap,), topic, in_process=False)
    sidecar.start()
    assert wait_until(lambda: sidecar.connected)
    [first] = set(sidecar_processes()) - strays
    items = scored(build("v1"))
    submit_all(sidecar, items * 50, prefix="before")
    first.kill()  # as the kernel's OOM killer would
    assert wait_until(lambda: sample_value(metrics, "shadowline_sidecar_restarts_total") == 1, 30)
    assert wait_until(lambda: sidecar.running and sidecar.connected, 30)  # the new one
    submit_all(sidecar, items, prefix="after")
    records = read_records(
        kafka_bootstrap,
        topic,
        timeout_s=30,
        until=lambda r: any(x.transaction_id == "after5" for x in r),
    )
    sidecar.close()
    assert {f"after{n}" for n in range(6)} <= {r.transaction_id for r in records}
    assert accounted(metrics) == 306  # each one sent, failed, dropped, shed or counted as gone
