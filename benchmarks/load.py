"""Load and measurements for the bench: payloads per server, one load run, scorer metrics."""

from __future__ import annotations

import json
import statistics
import time
import urllib.request
from typing import Any

from benchmarks.model import sample_rows
from loadtest import Payload, RunConfig, build_result, parse_target, run, synthetic_payloads

ROWS = sample_rows(256, seed=1)
CONNECTIONS = 16  # closed loop, as in the targets


def payloads(server: str) -> tuple[Payload, ...]:
    """The same 256 rows in each server's request shape."""
    if server == "scorer":
        return tuple(
            Payload("valid", "/v1/score", json.dumps(
                {"transaction_id": f"bench-{i}", "features": row}, separators=(",", ":")
            ).encode())
            for i, row in enumerate(ROWS)
        )  # fmt: skip
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
        "target": parse_target(url), "payloads": payload_set or payloads(server),
        "duration_s": duration_s, "procs": procs, "timeout_s": 5.0, "mix": mix,
    }  # fmt: skip
    if rate is None:
        cfg = RunConfig(mode="closed", connections=CONNECTIONS, **common)  # type: ignore[arg-type]
    else:
        cfg = RunConfig(mode="open", rate=rate, connections=256, **common)  # type: ignore[arg-type]
    began = time.perf_counter()
    # A process of its own: the bench's threads (promotions, broker restarts) and its own
    # Python work must not delay the generator through the GIL.
    rec, _ = run(cfg, isolate=isolate)
    return build_result(cfg, rec, time.perf_counter() - began)


def scrape(url: str) -> dict[str, float]:
    """Prometheus text from ``url/metrics``, summed over labels by metric name."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:  # noqa: S310 - loopback
        text = resp.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0]
        try:
            totals[name] = totals.get(name, 0.0) + float(value)
        except ValueError:
            continue
    return totals


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


def counter_deltas(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {
        key: after.get(metric, 0.0) - before.get(metric, 0.0)
        for key, metric in SCORER_COUNTERS.items()
    }


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")
