"""Load and measurements for the bench: payloads per server, one load run, scorer metrics."""

from __future__ import annotations

import json
import math
import statistics
import time
import urllib.request
from typing import Any

from benchmarks.model import sample_rows
from loadtest import Payload, RunConfig, build_result, parse_target, run, synthetic_payloads

ROWS = sample_rows(256, seed=1)
CONNECTIONS = 16  # closed loop, as in the targets
# Open loop: a pool sized for the rate, opened before the run, as docs/loadtest.md tells
# users to size theirs: room for every request in flight up to 10 ms each.  With the
# generator's 16, a run at 7,360 req/s (about 15 in flight at 2 ms) opened 28 to 128
# connections mid-run with shadows off too (bench run 17), and each such storm slowed its
# whole second: the 3-shadow ratio then compared storms, not shadows.
PREOPEN_LATENCY_S = 0.010
PREOPEN_RANGE = (16, 256)


def payloads(server: str) -> tuple[Payload, ...]:
    """The same 256 rows in each server's request shape."""
    if server.startswith("scorer") or server == "floor":
        path = "/" if server == "floor" else "/v1/score"
        return tuple(
            Payload(
                "valid",
                path,
                json.dumps(
                    {"transaction_id": f"bench-{i}", "features": row}, separators=(",", ":")
                ).encode(),
            )
            for i, row in enumerate(ROWS)
        )
    path = "/predict" if server == "naive" else "/"
    return tuple(
        Payload("valid", path, json.dumps(row, separators=(",", ":")).encode()) for row in ROWS
    )


MIX = {"valid": 90.0, "invalid": 5.0, "batch": 5.0}


def mixed_payloads() -> tuple[Payload, ...]:
    """loadtest's generated valid / invalid / batch payloads (10 rows) in the scorer's shape,
    over f00..f29 like the benchmark model."""
    return tuple(synthetic_payloads(fields=30, shape="scorer", per_kind=64))


def load(
    url: str,
    server: str,
    *,
    rate: float | None,
    duration_s: float,
    procs: int = 1,
    isolate: bool = True,
    payload_set: tuple[Payload, ...] | None = None,
    mix: dict[str, float] | None = None,
) -> dict[str, Any]:
    """One run: closed loop with 16 connections when ``rate`` is None, else open loop at
    ``rate``.  Returns loadtest's JSON result."""
    common = {
        "target": parse_target(url),
        "payloads": payload_set or payloads(server),
        "duration_s": duration_s,
        "procs": procs,
        "timeout_s": 5.0,
        "mix": mix,
    }
    if rate is None:
        cfg = RunConfig(mode="closed", connections=CONNECTIONS, **common)  # type: ignore[arg-type]
    else:
        low, high = PREOPEN_RANGE
        preopen = min(high, max(low, math.ceil(rate * PREOPEN_LATENCY_S)))
        cfg = RunConfig(
            mode="open",
            rate=rate,
            connections=high,
            preopen=preopen,
            **common,  # type: ignore[arg-type]
        )
    began = time.perf_counter()
    # A process of its own: the bench's threads (promotions, broker restarts) and its own
    # Python work must not delay the generator through the GIL.
    rec, started = run(cfg, isolate=isolate)
    result = build_result(cfg, rec, time.perf_counter() - began)
    result["started_wall"] = started  # the timeline's second 0, as time.time()
    return result


Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]  # (name, labels) -> value


def parse_exposition(text: str) -> Series:
    """Prometheus text exposition -> value by (metric name, sorted label pairs)."""
    series: Series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name, _, labels_part = name_part.partition("{")
        labels = tuple(
            sorted(
                (key.strip(), val.strip('"'))
                for key, _, val in (pair.partition("=") for pair in _label_pairs(labels_part))
            )
        )
        try:
            series[(name, labels)] = float(value)
        except ValueError:
            continue
    return series


def _label_pairs(part: str) -> list[str]:
    """``a="x",b="y"}`` -> ``['a="x"', 'b="y"']`` (label values here hold no commas)."""
    part = part.rstrip("}")
    return [pair for pair in part.split(",") if pair] if part else []


def scrape_series(url: str) -> Series:
    """``url/metrics`` parsed by :func:`parse_exposition`."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:  # noqa: S310 - loopback
        return parse_exposition(resp.read().decode())


def totals(series: Series) -> dict[str, float]:
    """Summed over labels, by metric name."""
    out: dict[str, float] = {}
    for (name, _), value in series.items():
        out[name] = out.get(name, 0.0) + value
    return out


def select(series: Series, name: str, **labels: str) -> float:
    """The sum of ``name``'s series whose labels include ``labels``."""
    return sum(
        value
        for (n, pairs), value in series.items()
        if n == name and all(dict(pairs).get(k) == v for k, v in labels.items())
    )


def scrape(url: str) -> dict[str, float]:
    """Prometheus text from ``url/metrics``, summed over labels by metric name."""
    return totals(scrape_series(url))


SCORER_COUNTERS = {
    "shed": "shadowline_shadow_shed_total",
    "shadow_errors": "shadowline_shadow_errors_total",
    "records": "shadowline_records_total",
    "kafka_sent": "shadowline_kafka_sent_total",
    "kafka_failed": "shadowline_kafka_failed_total",
    "kafka_dropped": "shadowline_kafka_dropped_total",
    "swaps": "shadowline_model_swaps_total",
    "swap_failures": "shadowline_model_swap_failures_total",
}


SHADOW_ERROR_KINDS = ("timeout", "busy", "shed", "error", "input", "load")
LAG = "shadowline_event_loop_lag_seconds"
HOLD = "shadowline_event_loop_hold_seconds"
BLOCKED = "shadowline_event_loop_blocked_seconds"
LAG_LIMIT = "0.002"  # the bucket bound of issue 12's 2 ms


def counter_deltas(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {
        key: after.get(metric, 0.0) - before.get(metric, 0.0)
        for key, metric in SCORER_COUNTERS.items()
    }


def scorer_deltas(before: Series, after: Series) -> dict[str, Any]:
    """What the scorer counted between two scrapes: its counters, the shadow entries by
    outcome (``scored`` = shadow decisions; the error kinds; ``shed_transactions`` = whole
    transactions dropped before the sidecar) and the event-loop lag probe's wakes, wakes
    later than 2 ms and its peak (the gauge is reset by the ``before`` scrape)."""
    out: dict[str, Any] = counter_deltas(totals(before), totals(after))

    def grew(name: str, **labels: str) -> float:
        return select(after, name, **labels) - select(before, name, **labels)

    outcomes = {"scored": grew("shadowline_decisions_total", role="shadow")}
    for kind in SHADOW_ERROR_KINDS:
        outcomes[kind] = grew("shadowline_shadow_errors_total", kind=kind)
    outcomes["shed_transactions"] = grew("shadowline_shadow_shed_total")
    out["shadow_outcomes"] = outcomes
    wakes = grew(f"{LAG}_count")
    if wakes > 0 or any(name == f"{LAG}_count" for name, _ in after):
        out["loop_lag"] = {
            "wakes": wakes,
            "over_2ms": wakes - grew(f"{LAG}_bucket", le=LAG_LIMIT),
            "max_ms": round(1000 * select(after, "shadowline_event_loop_lag_max_seconds"), 2),
        }
        holds = grew(f"{HOLD}_count")
        if holds > 0:  # Linux: the lag without the loop thread's run-queue wait
            out["loop_lag"]["holds_over_2ms"] = holds - grew(f"{HOLD}_bucket", le=LAG_LIMIT)
            out["loop_lag"]["hold_max_ms"] = round(
                1000 * select(after, "shadowline_event_loop_hold_max_seconds"), 2
            )
        blocked = grew(f"{BLOCKED}_count")
        if blocked > 0:  # the part of each hold the loop waited for the process's other threads
            out["loop_lag"]["blocked_over_2ms"] = blocked - grew(f"{BLOCKED}_bucket", le=LAG_LIMIT)
            out["loop_lag"]["blocked_max_ms"] = round(
                1000 * select(after, "shadowline_event_loop_blocked_max_seconds"), 2
            )
    return out


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")
