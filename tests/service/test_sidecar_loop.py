"""The sidecar loop's logic with an in-memory producer: batches become records, shadows are
sampled and shed, records wait in the spool while the producer cannot take them, and every
record is counted in the reports.  (The real producer and broker: test_sidecar.py.)"""

from __future__ import annotations

import logging
import pickle
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from registry.manifest import Manifest
from registry.records import decode_score
from service.models import LoadedModel, load_model
from service.pipe import Batch, ShadowSet, ShadowSpec
from service.producer import ProducerConfig
from service.shadow import Scored
from service.sidecar_loop import SidecarConfig, SpoolConfig, shed_share
from tests.service.helpers import LoopRun, MemoryProducers, build, scored, wait_until

PROD = build("v1")


def config(**overrides: Any) -> SidecarConfig:
    producer = ProducerConfig(servers=("127.0.0.1:9",), topic="scores", max_in_flight=1000)
    return SidecarConfig(producer, stats_interval_s=0.05, seed=1, shadow_niceness=0, **overrides)


def spec(version: str, rate: float = 1.0, bias: float = -2.0) -> ShadowSpec:
    model = build(version, bias=bias)
    return ShadowSpec(model.manifest, model.artifact, rate)


def batch(n: int, prefix: str = "t", lag_s: float = 0.0) -> list[Scored]:
    items = scored(PROD, 6, scored_at=time.time() - lag_s) * (n // 6 + 1)
    return [item._replace(transaction_id=f"{prefix}{i}") for i, item in enumerate(items[:n])]


def records(run: LoopRun) -> dict[str, Any]:
    return {key.decode(): decode_score(value) for key, value in run.producer.sent}


def test_batches_become_records_with_each_shadow_and_are_counted() -> None:
    run = LoopRun(config(), MemoryProducers())
    run.send(ShadowSet((spec("v2", bias=-1.0), spec("v3"))))
    assert run.loaded("v2", "v3")
    run.send(Batch(batch(12)))
    tally = run.finish()
    got = records(run)
    assert sorted(got) == sorted(f"t{i}" for i in range(12))
    for record in got.values():
        assert [s.version for s in record.shadows] == ["v2", "v3"]
        assert all(s.error is None and s.score is not None for s in record.shadows)
        assert record.production.version == "v1"
    assert (tally.records, tally.sent, tally.failed, tally.spooled) == (12, 12, 0, 0)
    assert sum(tally.scores["v2"].counts) == sum(tally.scores["v3"].counts) == 12
    assert run.producer.closed == 1


def test_a_shadow_scores_its_sampled_share() -> None:
    run = LoopRun(config(), MemoryProducers())
    run.send(ShadowSet((spec("v2", rate=0.3),)))
    assert run.loaded("v2")
    run.send(Batch(batch(120)))
    tally = run.finish()
    sampled = [r for r in records(run).values() if r.shadows]
    assert 15 < len(sampled) < 60
    assert sum(tally.scores["v2"].counts) == len(sampled)
    assert tally.records == 120


def test_late_batches_are_shed_up_front_and_counted() -> None:
    run = LoopRun(config(max_lag_s=1.0), MemoryProducers())
    run.send(ShadowSet((spec("v2"),)))
    assert run.loaded("v2")
    run.send(Batch(batch(6, "late", lag_s=5.0)))  # past max_lag_s: all shed
    run.send(Batch(batch(120, "behind", lag_s=0.875)))  # half way: about half shed
    run.send(Batch(batch(6, "fresh")))
    tally = run.finish()
    got = records(run)
    assert len(got) == 132
    entries = {tid: r.shadows[0] for tid, r in got.items()}
    late = [e for tid, e in entries.items() if tid.startswith("late")]
    assert all(e.error is not None and e.error.startswith("shed: the shadows were") for e in late)
    behind = [e for tid, e in entries.items() if tid.startswith("behind")]
    shed = [e for e in behind if e.error is not None]
    assert all(e.error.startswith("shed: ") for e in shed if e.error is not None)
    assert 20 < len(shed) < 110
    fresh = [e for tid, e in entries.items() if tid.startswith("fresh")]
    assert all(e.error is None for e in fresh)
    assert tally.shadow_errors == {("v2", "shed"): 6 + len(shed)}
    assert sum(tally.scores["v2"].counts) == 132 - 6 - len(shed)


def test_shed_share_grows_from_three_quarters_of_the_lag_bound_to_all() -> None:
    assert [shed_share(lag, 1.0) for lag in (0.0, 0.75, 0.875, 1.0, 3.0)] == [0, 0, 0.5, 1, 1]


def test_records_wait_in_the_spool_while_the_producer_is_full(tmp_path: Path) -> None:
    spool = SpoolConfig(directory=str(tmp_path), max_bytes=1 << 20, fsync_interval_s=0.0)
    producers = MemoryProducers()
    run = LoopRun(config(spool=spool), producers)
    run.producer.room = False
    run.send(Batch(batch(6)))
    assert wait_until(lambda: run.loop.tally.spooled == 6)
    assert run.producer.sent == []
    run.producer.room = True
    assert wait_until(lambda: run.loop.tally.replayed == 6)
    tally = run.finish()
    assert [key for key, _ in run.producer.sent] == [f"t{i}".encode() for i in range(6)]
    assert (tally.sent, tally.spooled, tally.replayed, tally.failed) == (0, 6, 6, 0)


def test_records_whose_delivery_fails_are_spooled_and_sent_again(tmp_path: Path) -> None:
    spool = SpoolConfig(directory=str(tmp_path), max_bytes=1 << 20, fsync_interval_s=0.0)
    run = LoopRun(config(spool=spool), MemoryProducers())
    run.producer.failing_now = True
    run.send(Batch(batch(6)))
    assert wait_until(lambda: run.loop.tally.spooled == 6)
    run.producer.failing_now = False
    assert wait_until(lambda: run.loop.tally.replayed == 6)
    tally = run.finish()
    assert sorted(key for key, _ in run.producer.sent) == sorted(f"t{i}".encode() for i in range(6))
    assert (tally.sent, tally.spooled, tally.replayed, tally.failed) == (0, 6, 6, 0)


def test_without_a_broker_or_spool_stopping_counts_what_it_held_as_failed() -> None:
    run = LoopRun(config(), MemoryProducers(ready=False))
    run.send(Batch(batch(6)))
    run.stop.set()
    tally = run.finish()
    assert run.producer.sent == []
    assert (tally.records, tally.sent, tally.failed) == (0, 0, 6)


def test_a_changed_shadow_set_and_a_version_that_cannot_load() -> None:
    run = LoopRun(config(), MemoryProducers())
    run.send(ShadowSet((spec("v2"),)))
    assert run.loaded("v2")
    run.send(Batch(batch(3, "a")))
    unsent = ShadowSpec(build("v4").manifest, b"", 1.0)  # bytes never sent: cannot load
    run.send(ShadowSet((spec("v3"), unsent)))
    assert run.loaded("v3")
    run.send(Batch(batch(3, "b")))
    tally = run.finish()
    got = records(run)
    assert all([s.version for s in got[f"a{i}"].shadows] == ["v2"] for i in range(3))
    for i in range(3):
        v3, v4 = got[f"b{i}"].shadows
        assert v3.version == "v3"
        assert v3.error is None
        assert v4.version == "v4"
        assert v4.error == (
            "error: the sidecar cannot load it (cannot load model fraud:v4: no ONNX bytes "
            "were sent)"
        )
    assert tally.shadow_errors == {("v4", "load"): 3}


def test_records_do_not_wait_for_a_shadow_that_is_still_loading() -> None:
    """A shadow's load runs beside the loop: the batches that come meanwhile become records
    at once, with no entry for it, and it scores from the first batch after its load."""
    release = threading.Event()

    def slow_load(manifest: Manifest, artifact: bytes) -> LoadedModel:
        assert release.wait(30)
        return load_model(manifest, artifact)

    run = LoopRun(config(), MemoryProducers(), load=slow_load)
    run.send(ShadowSet((spec("v2"),)))
    run.send(Batch(batch(3, "while")))
    assert wait_until(lambda: len(run.producer.sent) == 3)  # not held for the load
    assert run.loop.tally.shadows_loaded == ()
    release.set()
    assert run.loaded("v2")
    run.send(Batch(batch(3, "after")))
    tally = run.finish()
    got = records(run)
    assert all(got[f"while{i}"].shadows == [] for i in range(3))
    assert all([s.version for s in got[f"after{i}"].shadows] == ["v2"] for i in range(3))
    assert sum(tally.scores["v2"].counts) == 3
    assert tally.shadow_errors == {}


def test_a_load_that_raises_an_unexpected_error_is_a_load_failure() -> None:
    def broken_load(manifest: Manifest, artifact: bytes) -> LoadedModel:
        raise RuntimeError("out of file handles")

    run = LoopRun(config(), MemoryProducers(), load=broken_load)
    run.send(ShadowSet((spec("v2"),)))
    assert wait_until(lambda: bool(run.loop.tally.load_failures))
    run.send(Batch(batch(2)))
    tally = run.finish()
    [entry] = records(run)["t0"].shadows
    assert entry.error == (
        "error: the sidecar cannot load it (cannot load model fraud:v2: RuntimeError: out of "
        "file handles)"
    )
    assert tally.shadow_errors == {("v2", "load"): 2}


def test_a_frame_that_is_no_message_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    run = LoopRun(config(), MemoryProducers())
    with caplog.at_level(logging.ERROR, logger="service.sidecar_loop"):
        run.send_frame(struct.pack("!I", 0) + pickle.dumps(("batch", []), protocol=5))
        run.send(Batch(batch(2)))
        tally = run.finish()
    assert "sidecar pipe: unknown message kind tuple; ignored" in caplog.messages
    assert tally.records == 2
    assert orjson.loads(run.producer.sent[0][1])["transaction_id"] == "t0"


def test_the_sidecar_process_freezes_its_start_up_heap() -> None:
    # In a process of its own: freezing is process-wide, and this one is pytest's.
    code = (
        "import gc, sys\n"
        "from service.sidecar_loop import freeze_startup_heap\n"
        "assert 'confluent_kafka' not in sys.modules\n"
        "freeze_startup_heap('confluent-kafka')\n"
        "print(gc.get_freeze_count(), 'confluent_kafka' in sys.modules, len(gc.get_objects()))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    frozen, imported, young = done.stdout.split()
    assert int(frozen) > 10_000  # onnxruntime, numpy, the client: out of every full pass
    assert imported == "True"  # the client's objects are among them
    assert int(young) < int(frozen) // 10
