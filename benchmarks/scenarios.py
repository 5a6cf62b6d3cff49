"""The scorer's scenarios: shadows, a shadow-set change, promotions, a broker outage and the
shedding ramp, each an open-loop run with the scorer's own counters read around it.

Events (a shadow set changed, a version promoted, the broker killed) are stamped with the
wall clock and placed on the run's timeline afterwards, so "the second after the change" is
the generator's second, whatever the process start-up took.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.checks import CONTROL, around
from benchmarks.context import Context
from benchmarks.load import scorer_deltas, scrape_series
from benchmarks.machine_probe import probing, stalls_between
from benchmarks.model import HEAVY
from benchmarks.servers import wait_for_scorer

During = Callable[[float], list[dict[str, Any]]]


def rotate(items: list[Any], r: int) -> list[Any]:
    r %= len(items)
    return items[r:] + items[:r]


def event(**what: Any) -> dict[str, Any]:
    return {"wall": time.time(), **what}


def scorer_run(
    ctx: Context, rate: float | None, duration_s: float, during: During | None = None
) -> dict[str, Any]:
    """A run against the scorer (open loop at ``rate``, closed loop when None) with its
    counter deltas; ``during(t0)`` runs in a thread alongside and returns its events, each
    placed on the timeline (``second``) with the second it fell in and the one after
    (``after``)."""
    scorer = ctx.servers["scorer"]
    before = scrape_series(scorer.url)
    events: list[dict[str, Any]] = []
    thread = None
    if during is not None:
        t0 = time.monotonic()
        thread = threading.Thread(target=lambda: events.extend(during(t0)), daemon=True)
        thread.start()
    result = ctx.load(scorer.url, "scorer", rate=rate, duration_s=duration_s)
    if thread is not None:
        thread.join(30)
    time.sleep(1.0)  # let the last records reach the sink before reading its counters
    result["scorer"] = scorer_deltas(before, scrape_series(scorer.url))
    for e in events:
        e["second"] = round(e.pop("wall") - result["started_wall"], 2)
        e["after"] = [
            {
                "second": s["second"],
                "p99_ms": s["p99_ms"],
                "max_ms": s["max_ms"],
                "opened": s.get("opened"),
            }
            for s in around(result["timeline"], e["second"])
        ]
    result["events"] = events
    return result


def at(t0: float, offset_s: float) -> None:
    time.sleep(max(0.0, t0 + offset_s - time.monotonic()))


def shadows(ctx: Context, n: int, rate: float) -> dict[str, Any]:
    ctx.stack.set_shadows(n)
    wait_for_scorer(ctx.servers["scorer"], shadows=n)
    return scorer_run(ctx, rate, ctx.durations.shadows)


def shadow_change(ctx: Context, rate: float) -> dict[str, Any]:
    """From no shadows, 3 shadows added a third of the way in and removed at two thirds:
    the seconds after each change (models loaded, warmed, handed to the sidecar) are
    measured like every other second."""
    d = ctx.durations
    ctx.stack.set_shadows(0)
    wait_for_scorer(ctx.servers["scorer"], shadows=0)

    def change(t0: float) -> list[dict[str, Any]]:
        events = []
        for offset, n in ((d.change / 3, 3), (2 * d.change / 3, 0)):
            at(t0, offset)
            events.append(event(shadows=n))
            ctx.stack.set_shadows(n)
        return events

    result = scorer_run(ctx, rate, d.change, change)
    wait_for_scorer(ctx.servers["scorer"], shadows=0)
    return result


def promotions(ctx: Context, rate: float) -> dict[str, Any]:
    d = ctx.durations

    def promote_every(t0: float) -> list[dict[str, Any]]:
        events = []
        offset = d.promotion_every / 2
        while offset < d.promotions - 1:
            at(t0, offset)
            version = ctx.stack.promote_next()
            events.append(event(promoted=version))
            offset += d.promotion_every
        return events

    result = scorer_run(ctx, rate, d.promotions, promote_every)
    last = result["events"][-1]["promoted"] if result["events"] else None
    wait_for_scorer(ctx.servers["scorer"], production=last)
    return result


REST_RATE = 50.0  # req/s: ~1.5% of a core on the loop, so no request waits behind another


def changes_at_rest(ctx: Context, changes: bool = True) -> dict[str, Any]:
    """Every kind of change on a scorer at rest (a trickle of ``REST_RATE`` requests):
    3 shadows added, a promotion, a rollback, the shadows removed, one every
    ``rest_step`` seconds.  Under load the loop's own request work holds it past 2 ms
    too (a backlog of requests runs back to back, changes or not), so these runs are
    where a hold can be laid at a change's door: each change gets its own window, the
    scorer's counters read just before it and again at the end of its step.  With
    ``changes`` False the same windows pass with nothing done: the control, what the
    machine alone gives a scorer at rest.  A probe of the machine itself runs alongside
    (:mod:`benchmarks.machine_probe`): each window also gets the stalls it saw."""
    d = ctx.durations
    scorer = ctx.servers["scorer"]
    ctx.stack.set_shadows(0)
    wait_for_scorer(scorer, shadows=0)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("3 shadows added", lambda: ctx.stack.set_shadows(3)),
        ("promoted", ctx.stack.promote_next),
        ("rolled back", ctx.stack.rollback),
        ("shadows removed", lambda: ctx.stack.set_shadows(0)),
    ]
    if not changes:
        steps = [(f"no change ({i + 1})", lambda: None) for i in range(len(steps))]

    def windows(t0: float) -> list[dict[str, Any]]:
        events = []
        for i, (what, act) in enumerate(steps):
            at(t0, 0.5 + i * d.rest_step)
            before = scrape_series(scorer.url)
            events.append(event(change=what))
            act()
            at(t0, 0.5 + (i + 1) * d.rest_step - 0.1)
            events[-1]["scorer"] = scorer_deltas(before, scrape_series(scorer.url))
            events[-1]["end_wall"] = time.time()
        return events

    with probing() as machine:
        result = scorer_run(ctx, REST_RATE, 0.5 + len(steps) * d.rest_step + 0.5, windows)
    # The machine's own stalls, on the run's timeline, and those in each window (from its
    # first scrape to its last).
    started = result["started_wall"]
    for stall in machine.stalls:
        stall["second"] = round(stall.pop("wall") - started, 3)
    result["machine_stalls"] = machine.stalls
    for e in result["events"]:
        end = e.pop("end_wall", started + e["second"] + d.rest_step) - started
        e["machine"] = stalls_between(machine.stalls, e["second"], end, complete=machine.complete)
    wait_for_scorer(scorer, shadows=0)
    return result


def outage(ctx: Context, rate: float) -> dict[str, Any]:
    d = ctx.durations

    def kill_and_restart(t0: float) -> list[dict[str, Any]]:
        at(t0, d.outage_at)
        ctx.stack.kill_broker()
        events = [event(broker="killed")]
        at(t0, d.outage_at + d.outage_for)
        ctx.stack.restart_broker()
        events.append(event(broker="back"))
        return events

    return scorer_run(ctx, rate, d.outage, kill_and_restart)


def scorer_rep(ctx: Context, r: int, rate: float, rep: dict[str, Any]) -> None:
    """One repetition of the scorer's scenarios: 0, 1, 3 shadows (order rotating) and 0
    shadows again (the control: how far two runs of one configuration differ), the
    shadow-set change, promotions every few seconds with no shadows, then every kind of
    change on a scorer at rest and the same rest without them."""
    for n in rotate([0, 1, 3], r):
        print(f"rep {r + 1}: scorer with {n} shadows at {rate}/s", flush=True)
        rep[f"shadows{n}"] = shadows(ctx, n, rate)
    print(f"rep {r + 1}: scorer with 0 shadows again (the control) at {rate}/s", flush=True)
    rep[CONTROL] = shadows(ctx, 0, rate)
    print(f"rep {r + 1}: shadow set changed under load", flush=True)
    rep["change"] = shadow_change(ctx, rate)
    print(f"rep {r + 1}: promotions every {ctx.durations.promotion_every} s", flush=True)
    rep["promotions"] = promotions(ctx, rate)
    print(
        f"rep {r + 1}: changes at rest ({REST_RATE:.0f} req/s), then the same at rest "
        "without them (the control)",
        flush=True,
    )
    rep["rest_changes"] = changes_at_rest(ctx)
    rep["rest_control"] = changes_at_rest(ctx, changes=False)


RAMP_FACTORS = (1.0, 1.3, 1.6, 2.0, 2.5)


def _step(ctx: Context, rate: float | None, label: str) -> dict[str, Any]:
    print(f"shedding ramp: {label}", flush=True)
    run = scorer_run(ctx, rate, ctx.durations.ramp_step)
    out = run["scorer"]["shadow_outcomes"]
    time.sleep(1.0)  # the sidecar catches up before the next step
    return {
        "label": label,
        "rate_target": rate,
        "rate_achieved": run["rate_achieved"],
        "p99_ms": run["latency_ms"]["p99"],
        "failed": run["failed"],
        "outcomes": out,
        "shed": out["shed"] + out["shed_transactions"],
        "loop_lag": run["scorer"].get("loop_lag"),
    }


def shed_ramp(ctx: Context, half_rate: float) -> dict[str, Any]:
    """The rate raised step by step from half the scorer's maximum until the sidecar sheds,
    then one step more; a closed-loop step last if it never shed.  First with one of the
    benchmark model's variants in shadow at 100% (the per-shadow rate is the request rate);
    on this machine that shadow keeps up with everything the scorer can take, so the same
    ramp runs again with three heavy shadows (h1..h3, ``benchmarks.model.HEAVY_TREES`` trees,
    about ten times the inference cost each), which take the sidecar past its capacity below
    the scorer's maximum: what it cannot score must be counted as shed, never as a timeout or
    busy."""
    light = _ramp(ctx, half_rate, ("s1",), "1 shadow")
    heavy = (
        _ramp(ctx, half_rate, HEAVY, "3 heavy shadows") if light["shed_starts_at"] is None else None
    )
    ctx.stack.set_shadows(0)
    wait_for_scorer(ctx.servers["scorer"], shadows=0)
    steps = light["steps"] + (heavy["steps"] if heavy else [])
    shedding = [s for s in steps if s["shed"] > 0]
    return {
        "steps": steps,
        "shed_starts_at": light["shed_starts_at"],
        "heavy_shed_starts_at": heavy["shed_starts_at"] if heavy else None,
        "shed_seen": bool(shedding),
        "lost_not_shed": sum(s["outcomes"]["timeout"] + s["outcomes"]["busy"] for s in shedding),
    }


def _ramp(ctx: Context, half_rate: float, versions: tuple[str, ...], what: str) -> dict[str, Any]:
    """One ramp with ``versions`` in shadow: its steps and the rate shedding started at."""
    ctx.stack.set_shadow_versions(versions)
    wait_for_scorer(ctx.servers["scorer"], shadows=len(versions), timeout_s=60.0)
    steps: list[dict[str, Any]] = []
    shed_from: float | None = None
    for rate in [*(round(half_rate * f, -1) for f in RAMP_FACTORS), None]:
        if rate is None and shed_from is not None:
            break
        steps.append(_step(ctx, rate, f"{rate or 'max'} req/s, {what}"))
        if steps[-1]["shed"] > 0 and shed_from is None:
            shed_from = steps[-1]["rate_achieved"]
        elif shed_from is not None:
            break
    return {"steps": steps, "shed_starts_at": shed_from}
