"""Micro-benchmark of the scoring request path in-process: what bounding the input costs.

``python -m benchmarks.input_checks`` times :meth:`service.scorer.Scorer.score` (parse, input
checks, one onnxruntime call, response) on normal requests of the benchmark model (30 numeric
fields, plus a few fields the model does not know, as clients send), and on abusive bodies
the input limits refuse.  It prints microseconds per call (median and minimum of 7 slices) as
JSON; run it
before and after a change to the request path.  No server, no network.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import orjson

from benchmarks.model import manifest_for, sample_rows, train


def _per_call_us(call: Callable[[], object], seconds: float) -> dict[str, float]:
    slices = []
    for _ in range(7):
        calls, stop = 0, time.perf_counter() + seconds / 7
        started = time.perf_counter()
        while time.perf_counter() < stop:
            call()
            calls += 1
        slices.append((time.perf_counter() - started) / calls * 1e6)
    # The minimum is the least disturbed slice: on a shared machine it moves far less than
    # the median between runs.
    return {"median": round(statistics.median(slices), 2), "min": round(min(slices), 2)}


def _refused(score: Callable[[bytes], bytes], body: bytes) -> Callable[[], object]:
    from service.errors import ServiceError

    def call() -> object:
        try:
            return score(body)
        except ServiceError as exc:
            return exc

    return call


def _fill(row: dict[str, float], item: Callable[[int], tuple[str, int]], size: int) -> bytes:
    """A transaction of ``row`` plus as many ``item(i)`` fields as fit in ``size`` bytes."""
    features: dict[str, object] = dict(row)
    i = 0
    while len(orjson.dumps({"transaction_id": "t", "features": features})) < size - 16:
        key, value = item(i)
        features[key] = value
        i += 1
    return orjson.dumps({"transaction_id": "t", "features": features})


def run(seconds: float) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    from registry.manifest import Manifest
    from service.live import LiveModels, ModelSet
    from service.metrics import ServiceMetrics
    from service.models import load_model
    from service.scorer import Scorer, check_transaction, parse_object

    onnx_bytes = train(trees=50).onnx_bytes
    manifest = manifest_for(onnx_bytes, "v1")
    assert isinstance(manifest, Manifest)
    model = load_model(manifest, onnx_bytes)
    live = LiveModels(ModelSet(1, model))
    scorer = Scorer(
        live,
        lambda _: None,
        ServiceMetrics(CollectorRegistry()),
        model_name="fraud",
        max_batch=500,
    )
    rows = sample_rows(64, seed=5)
    normal = [
        orjson.dumps(
            {
                "transaction_id": f"tx-{i}",
                "features": {
                    **row,
                    "channel": "web",
                    "merchant": "m-1234",
                    "user_agent": "x" * 120,
                },
            }
        )
        for i, row in enumerate(rows)
    ]
    counter = iter(range(1 << 62))
    # What reaches the scorer is at most the body limit (32 KiB by default; the old 1 MiB limit
    # let 800 KB with 100,000 unknown fields through): the most unknown fields and the longest
    # string that fit.
    abusive = {
        "unknown_fields_filling_32k": _fill(rows[0], lambda i: (f"k{i}", i), 32_000),
        "100k_unknown_fields_800k": orjson.dumps(
            {"transaction_id": "t", "features": {**rows[0], **{f"k{i}": 1 for i in range(100_000)}}}
        ),
        "long_string_filling_32k": orjson.dumps(
            {"transaction_id": "t", "features": {**rows[0], "note": "x" * 31_000}}
        ),
    }

    def checks_only() -> object:
        problems: list[str] = []
        data = parse_object(normal[next(counter) % 64])
        return check_transaction(data, model, "", problems)

    result: dict[str, Any] = {
        "normal_parse_and_checks_us": _per_call_us(checks_only, seconds),
        "normal_score_us": _per_call_us(lambda: scorer.score(normal[next(counter) % 64]), seconds),
        "normal_body_bytes": len(normal[0]),
    }
    for name, body in abusive.items():
        result[f"{name}_us"] = _per_call_us(_refused(scorer.score, body), seconds / 2)
        result[f"{name}_body_bytes"] = len(body)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=7.0, help="time per measurement")
    print(json.dumps(run(parser.parse_args().seconds), indent=2))


if __name__ == "__main__":
    main()
