"""What prometheus_client's multiprocess mode would cost the scorer, measured.

With ``SHADOWLINE_WORKERS`` > 1 each uvicorn worker is a process with its own metrics, so a
scrape sees one of them.  prometheus_client's multiprocess mode fixes that by writing every
value to memory-mapped files that ``/metrics`` merges.  This measures both modes in fresh
processes: the metric work of one scored request (the four observations the request path
makes), and one scrape with ``workers`` processes' files.

    python -m benchmarks.metrics_modes [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

_PROBE = """
import json, os, sys, time
from prometheus_client import CollectorRegistry, generate_latest
from service.metrics import ServiceMetrics

multiproc = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
metrics = ServiceMetrics(CollectorRegistry())
request = metrics.request_seconds.labels("/v1/score", "200").observe
inference = metrics.inference_seconds.labels("production", "v1").observe
score = metrics.scores.labels("production", "v1").observe
block = metrics.decisions.labels("production", "v1", "allow").inc
n = 200_000
start = time.perf_counter()
for i in range(n):
    request(0.0004); inference(0.00005); score(0.02); block()
per_request_us = (time.perf_counter() - start) / n * 1e6
result = {"per_request_us": per_request_us}
if sys.argv[1] == "scrape":
    if multiproc:
        from prometheus_client import multiprocess
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = metrics.registry
    start = time.perf_counter()
    for _ in range(50):
        payload = generate_latest(registry)
    result["scrape_ms"] = (time.perf_counter() - start) / 50 * 1e3
    result["scrape_bytes"] = len(payload)
print(json.dumps(result))
"""


def _probe(mode: str, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], env=env, capture_output=True, text=True, check=True
    )
    return dict(json.loads(out.stdout))


def measure(workers: int) -> dict[str, dict[str, float]]:
    """Per-request metric cost and scrape time, in-process and multiprocess mode."""
    base = {key: value for key, value in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    results = {"in_process": _probe("scrape", base)}
    with tempfile.TemporaryDirectory() as folder:
        env = {**base, "PROMETHEUS_MULTIPROC_DIR": folder}
        for _ in range(workers - 1):  # the other workers' files
            _probe("observe", env)
        results["multiprocess"] = _probe("scrape", env)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    started = time.time()
    runs = [measure(args.workers) for _ in range(args.reps)]
    for mode in ("in_process", "multiprocess"):
        for key in runs[0][mode]:
            values = sorted(run[mode][key] for run in runs)
            print(f"{mode:13} {key:15} median {values[len(values) // 2]:10.2f}  all {values}")
    took = time.time() - started
    print(f"({args.reps} repetitions, {args.workers} workers' files, {took:.0f} s)")


if __name__ == "__main__":
    main()
