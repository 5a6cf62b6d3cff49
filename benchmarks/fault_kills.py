"""Rows of the fault matrix that kill a process under load: Redis, the broker, the sidecar, the
scorer, and a long broker outage.  Each is one function of :class:`benchmarks.faults.Env`
returning a :class:`benchmarks.faults.Row`."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import time
import urllib.request
from typing import Any

import psutil

from benchmarks.faults import Env, Row
from benchmarks.stack import MODEL_NAME
from benchmarks.watch import Delivery, frozen

NO_FAILURES = "no scoring request fails"
EVERY_RECORD = "every answered request's record arrives, once"


def _load_text(env: Env, seconds: float) -> str:
    return f"{env.rate:.0f} req/s open loop for {seconds:.0f} s (single transactions)"


def _answered(result: dict[str, Any]) -> int:
    return int(result["by_status"].get("200", 0))


def _sleep_until(t: float) -> None:
    time.sleep(max(0.0, t - time.monotonic()))


def _readyz(env: Env) -> dict[str, Any]:
    with urllib.request.urlopen(f"{env.url}/readyz", timeout=2) as resp:  # noqa: S310 - loopback
        body: dict[str, Any] = json.loads(resp.read())
        return body


def _kill(pid: int) -> None:
    """SIGKILL ``pid`` and wait until it is gone (or a zombie)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(psutil.Error):
        psutil.Process(pid).wait(10)


def _counter_delta(before: dict[str, float], after: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


def _check_records(row: Row, env: Env, answered: int, mark: int, killed_at: int | None) -> None:
    """Every answered request's record arrived; a record twice only when its first copy was on
    the broker that was killed (its acknowledgement was lost with it: at-least-once)."""
    drained = env.drain()
    ids = env.watcher.since(mark)
    delivery = Delivery.of(answered, ids)
    row.data["records"] = delivery.as_dict()
    resent = 0
    if killed_at is not None:
        before = env.watcher.since(mark) - env.watcher.since(killed_at)
        after = env.watcher.since(killed_at)
        resent = len(set(before) & set(after))
        twice = sum(n - 1 for n in before.values()) + sum(n - 1 for n in after.values())
        row.data["records"]["resent_after_the_kill"] = resent
    else:
        twice = delivery.duplicates
    row.check(
        f"{delivery.answered} answered, {delivery.seen} records, {delivery.lost} lost, "
        f"{twice} sent twice" + (f", {resent} resent (at-least-once)" if resent else ""),
        drained and delivery.lost == 0 and twice == 0,
    )


def redis_kill(env: Env) -> Row:
    d = env.durations
    row = Row(
        name="redis_kill",
        fault="kill -9 of Redis, then `shadowline stack up` at once",
        load=_load_text(env, d.load),
        must_hold=[
            NO_FAILURES,
            "`stack up` restarts Redis at once on its old port",
            "the registry survives: same production, audit chain intact",
            "the scorer reaches the registry again; a promotion after it is served",
            EVERY_RECORD,
        ],
    )
    registry = env.stack.registry
    production = registry.deployment(MODEL_NAME).production
    mark = env.watcher.count()
    stack = env.stack.stack

    def fault(t0: float) -> list[dict[str, Any]]:
        _sleep_until(t0 + d.fault_at)
        old = stack.component("redis")
        _kill(old.pid)
        began = time.monotonic()
        new = {c.name: c for c in stack.up()}["redis"]
        return [
            {
                "killed_port": old.port,
                "restarted_port": new.port,
                "restart_s": round(time.monotonic() - began, 2),
            }
        ]

    result = env.load(d.load, fault)
    [event] = result["events"]
    row.data.update(load=result, restart=event)
    row.check(f"{result['failed']} of {result['requests']} requests failed", result["failed"] == 0)
    row.check(
        f"Redis back on port {event['restarted_port']} (was {event['killed_port']}) "
        f"after {event['restart_s']} s",
        event["restarted_port"] == event["killed_port"] and event["restart_s"] < 5,
    )
    audit = registry.verify_audit(MODEL_NAME)
    kept = registry.deployment(MODEL_NAME).production
    row.check(
        f"production {kept} (was {production}); audit chain of {audit.entries} entries "
        f"{'intact' if audit.ok else 'broken: ' + '; '.join(audit.problems)}",
        kept == production and audit.ok,
    )
    version = env.stack.promote_next()
    from benchmarks.servers import wait_for_scorer

    try:
        wait_for_scorer(env.scorer, production=version, timeout_s=5.0)
        served = True
    except Exception:
        served = False
    reachable = _readyz(env)["registry"]["reachable"]
    row.check(
        f"registry reachable: {reachable}; promotion of {version} served: {served}",
        reachable and served,
    )
    _check_records(row, env, _answered(result), mark, None)
    return row


def broker_kill(env: Env) -> Row:
    d = env.durations
    row = Row(
        name="broker_kill",
        fault="kill -9 of the broker, then `shadowline stack up` at once",
        load=_load_text(env, d.load),
        must_hold=[
            NO_FAILURES,
            "`stack up` restarts the broker at once on its old port",
            "records the dead broker held unacknowledged, and those scored meanwhile, are "
            "spooled and sent to the new one",
            EVERY_RECORD,
        ],
    )
    mark = env.watcher.count()
    killed: list[int] = []

    def fault(t0: float) -> list[dict[str, Any]]:
        _sleep_until(t0 + d.fault_at)
        old_port = env.stack.stack.component("kafka").port
        with frozen(env.sidecar()):
            env.watcher.settle()  # read what the in-memory broker acknowledged
            env.watcher.pause()
            killed.append(env.watcher.count())
            env.stack.kill_broker()
            restart_s, port = env.restart_broker()
        return [{"killed_port": old_port, "restarted_port": port, "restart_s": round(restart_s, 2)}]

    before = env.counters()
    result = env.load(d.load, fault)
    [event] = result["events"]
    row.data.update(load=result, restart=event)
    row.check(f"{result['failed']} of {result['requests']} requests failed", result["failed"] == 0)
    row.check(
        f"broker back on port {event['restarted_port']} (was {event['killed_port']}) "
        f"after {event['restart_s']} s",
        event["restarted_port"] == event["killed_port"] and event["restart_s"] < 5,
    )
    _check_records(row, env, _answered(result), mark, killed[0])
    spooled = _counter_delta(before, env.counters(), "shadowline_spool_written_total")
    row.data["spooled"] = spooled
    return row


def sidecar_kill(env: Env) -> Row:
    d = env.durations
    row = Row(
        name="sidecar_kill",
        fault="kill -9 of the sidecar process",
        load=_load_text(env, d.load),
        must_hold=[
            NO_FAILURES,
            "the scorer starts a new sidecar",
            "records lost only among those the dead sidecar held, and all of them counted "
            '(records_failed{kind="sidecar_gone"})',
        ],
    )
    mark = env.watcher.count()

    def fault(t0: float) -> list[dict[str, Any]]:
        _sleep_until(t0 + d.fault_at)
        sidecar = env.sidecar()
        if sidecar is None:
            return [{"error": "no sidecar process found"}]
        _kill(sidecar.pid)
        return [{"killed_pid": sidecar.pid}]

    before = env.counters()
    result = env.load(d.load, fault)
    row.data["load"] = result
    row.check(f"{result['failed']} of {result['requests']} requests failed", result["failed"] == 0)
    drained = env.drain()
    after = env.counters()
    restarts = _counter_delta(before, after, "shadowline_sidecar_restarts_total")
    gone = _counter_delta(before, after, "shadowline_records_failed_total")
    new = env.sidecar()
    row.check(
        f"sidecar restarts: {restarts:.0f}; a new sidecar runs: {new is not None}",
        restarts == 1 and new is not None,
    )
    delivery = Delivery.of(_answered(result), env.watcher.since(mark))
    row.data.update(records=delivery.as_dict(), counted_gone=gone)
    row.check(
        f"{delivery.answered} answered, {delivery.lost} lost, {gone:.0f} counted as "
        f"sidecar_gone, {delivery.duplicates} sent twice",
        drained and delivery.lost <= gone and delivery.duplicates == 0,
    )
    return row


def scorer_kill(env: Env) -> Row:
    d = env.durations
    held = int(env.rate)  # about a second of traffic: what the process holds in memory
    duration = max(d.load, d.fault_at + 25.0)  # the new scorer serves for a while too
    row = Row(
        name="scorer_kill",
        fault="kill -9 of the scorer, restarted at once (as a supervisor does)",
        load=_load_text(env, duration),
        must_hold=[
            "requests fail only while no scorer listens (connection errors, no 5xx)",
            "the new scorer is ready within 15 s",
            f"records lost at most what the killed process held (about a second: {held}); "
            "none sent twice",
        ],
    )
    mark = env.watcher.count()

    def fault(t0: float) -> list[dict[str, Any]]:
        _sleep_until(t0 + d.fault_at)
        return [{"ready_after_s": round(env.restart_scorer(kill=True), 2)}]

    result = env.load(duration, fault)
    [event] = result["events"]
    row.data.update(load=result, restart=event)
    server_errors = sum(n for status, n in result["by_status"].items() if status.startswith("5"))
    row.check(
        f"{result['failed']} of {result['requests']} requests failed "
        f"({sum(result['errors'].values())} without an answer, {server_errors} 5xx)",
        server_errors == 0,
    )
    row.check(f"ready again after {event['ready_after_s']} s", event["ready_after_s"] < 15)
    drained = env.drain()
    delivery = Delivery.of(_answered(result), env.watcher.since(mark))
    row.data["records"] = delivery.as_dict()
    row.check(
        f"{delivery.answered} answered, {delivery.lost} lost, {delivery.duplicates} sent twice",
        drained and delivery.lost <= held and delivery.duplicates == 0,
    )
    return row


def broker_outage(env: Env) -> Row:
    d = env.durations
    tail = 30.0 if d.outage >= 120 else 15.0
    duration = d.fault_at + d.outage + tail
    bound = float(env.env.get("SHADOWLINE_SPOOL_MAX_BYTES", 1 << 30))
    row = Row(
        name="broker_outage",
        fault=f"the broker down for {d.outage:.0f} s, then `stack up`",
        load=_load_text(env, duration),
        must_hold=[
            NO_FAILURES,
            "/readyz stays 200 and reports the broker unreachable and the spooled records",
            f"the spool holds everything (at most {bound / 2**20:.0f} MiB): 0 records "
            "dropped or failed",
            EVERY_RECORD,
        ],
    )
    mark = env.watcher.count()
    killed: list[int] = []
    seen: collections.Counter[str] = collections.Counter()
    peak = [0.0, 0.0]

    def fault(t0: float) -> list[dict[str, Any]]:
        _sleep_until(t0 + d.fault_at)
        old_port = env.stack.stack.component("kafka").port
        with frozen(env.sidecar()):
            env.watcher.settle()
            env.watcher.pause()
            killed.append(env.watcher.count())
            env.stack.kill_broker()
        down = time.monotonic()
        while time.monotonic() < down + d.outage:
            broker = _readyz(env)["broker"]
            seen["unreachable" if not broker["reachable"] else "reachable"] += 1
            peak[0] = max(peak[0], broker["spooled_records"])
            peak[1] = max(peak[1], broker["spooled_bytes"])
            time.sleep(min(5.0, d.outage / 10))
        restart_s, port = env.restart_broker()
        back = time.monotonic()
        while _readyz(env)["broker"]["spooled_records"] and time.monotonic() < back + 600:
            time.sleep(0.5)
        return [
            {
                "outage_s": round(back - down, 1),
                "restart_s": round(restart_s, 2),
                "killed_port": old_port,
                "restarted_port": port,
                "spool_drained_after_s": round(time.monotonic() - back, 1),
            }
        ]

    before = env.counters()
    result = env.load(duration, fault)
    [event] = result["events"]
    row.data.update(
        load=result,
        outage=event,
        readyz=dict(seen),
        spool_peak_records=peak[0],
        spool_peak_bytes=peak[1],
    )
    row.check(f"{result['failed']} of {result['requests']} requests failed", result["failed"] == 0)
    row.check(
        f"broker back on port {event['restarted_port']} (was {event['killed_port']}) "
        f"after {event['restart_s']} s",
        event["restarted_port"] == event["killed_port"],
    )
    row.check(
        f"/readyz during the outage: {dict(seen)}; spool peak {peak[0]:.0f} records, "
        f"{peak[1] / 2**20:.1f} MiB; drained {event['spool_drained_after_s']} s after "
        "the broker was back",
        seen["unreachable"] > 0 and peak[0] > 0,
    )
    _check_records(row, env, _answered(result), mark, killed[0])
    after = env.counters()
    lost = {
        name: _counter_delta(before, after, f"shadowline_{name}_total")
        for name in ("kafka_dropped", "kafka_failed", "shadow_shed")
    }
    row.check(
        f"dropped {lost['kafka_dropped']:.0f}, failed {lost['kafka_failed']:.0f}, "
        f"shed {lost['shadow_shed']:.0f}; spool peak within the bound",
        not any(lost.values()) and peak[1] <= bound,
    )
    return row
