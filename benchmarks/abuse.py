"""Abusive bodies beside normal traffic: normal requests' p99 must stay within 2x.

``python -m benchmarks.abuse`` (about two minutes) starts the real scorer (``shadowline
serve``, its sidecar, Redis and the broker, all on 127.0.0.1) with the benchmark model in
production, then runs, interleaved for ``--reps`` repetitions, open-loop normal traffic at
``--rate`` requests/s alone and with ``--abusers`` senders of abusive bodies beside it (each
cycles through the bodies below, as fast as it gets answers, or at ``--abuse-rate`` in all).
It prints (and writes with ``--out``) the normal requests' p50/p99 for each run, the ratio of
the medians, the answers the abusive bodies got and the machine's load average.  Not a test:
timing on a shared machine.

Abusive bodies, each what the scorer's input limits refuse or bound (docs/reliability.md):
an 800 KB body with 100,000 unknown fields (refused by its Content-Length, unread), 32 KB of
unknown fields (refused before any per-key work), a 31,000-character string, and the largest
body that is accepted: the model's fields plus 256 others of 100 characters.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import threading
from pathlib import Path
from typing import Any

import orjson

from benchmarks.load import load, payloads
from benchmarks.model import sample_rows, train
from benchmarks.servers import start_scorer, wait_for_scorer
from benchmarks.stack import ScorerStack


def abusive_bodies() -> dict[str, bytes]:
    row = sample_rows(1, seed=9)[0]

    def body(features: dict[str, Any]) -> bytes:
        return orjson.dumps({"transaction_id": "abuse", "features": features})

    many: dict[str, Any] = dict(row)
    i = 0
    while len(body(many)) < 32_000:
        many[f"k{i}"] = i
        i += 1
    return {
        "800kb_100k_unknown": body({**row, **{f"k{i}": 1 for i in range(100_000)}}),
        "32kb_unknown_fields": body(many),
        "31k_char_string": body({**row, "note": "x" * 31_000}),
        "largest_accepted": body({**row, **{f"extra{i:03d}": "y" * 100 for i in range(256)}}),
    }


class Abuser(threading.Thread):
    """One keep-alive connection sending the abusive bodies in turn until stopped."""

    def __init__(self, host: str, port: int, bodies: dict[str, bytes], rate: float | None) -> None:
        super().__init__(daemon=True)
        self._host, self._port, self._bodies = host, port, list(bodies.items())
        self._pause = 0.0 if rate is None else 1.0 / rate
        self.stop = threading.Event()
        self.answers: dict[str, dict[int, int]] = {name: {} for name in bodies}

    def run(self) -> None:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=10)
        n = 0
        while not self.stop.wait(self._pause):
            name, body = self._bodies[n % len(self._bodies)]
            n += 1
            try:
                conn.request("POST", "/v1/score", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                status = response.status
                if response.getheader("connection", "").lower() == "close":
                    conn.close()
            except (OSError, http.client.HTTPException):
                status = 0  # the server closed the connection (a refused, unread body)
                conn.close()
            counts = self.answers[name]
            counts[status] = counts.get(status, 0) + 1
        conn.close()


def one_run(
    url: str,
    rate: float,
    seconds: float,
    abusers: int,
    only: list[str] | None,
    abuse_rate: float | None,
) -> dict[str, Any]:
    host, port = url.removeprefix("http://").split(":")
    bodies = {k: v for k, v in abusive_bodies().items() if not only or k in only}
    each = None if abuse_rate is None else abuse_rate / max(abusers, 1)
    threads = [Abuser(host, int(port), bodies, each) for _ in range(abusers)]
    for thread in threads:
        thread.start()
    try:
        result = load(url, "scorer", rate=rate, duration_s=seconds, payload_set=payloads("scorer"))
    finally:
        for thread in threads:
            thread.stop.set()
        for thread in threads:
            thread.join(15)
    answers: dict[str, dict[int, int]] = {}
    for thread in threads:
        for name, counts in thread.answers.items():
            merged = answers.setdefault(name, {})
            for status, count in counts.items():
                merged[status] = merged.get(status, 0) + count
    return {
        "abusers": abusers,
        "normal_p50_ms": result["latency_ms"]["p50"],
        "normal_p99_ms": result["latency_ms"]["p99"],
        "normal_completed": result["completed"],
        "normal_by_status": result["by_status"],
        "abusive_answers": answers,
        "load_average": os.getloadavg(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=300.0, help="normal requests per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--abusers", type=int, default=3, help="abusive senders")
    parser.add_argument("--only", nargs="*", help="send only these abusive bodies")
    parser.add_argument(
        "--abuse-rate", type=float, help="abusive requests/s in all (default: as fast as they go)"
    )
    parser.add_argument("--out", type=Path, help="also write the JSON result here")
    args = parser.parse_args()
    model = train(trees=100)
    with tempfile.TemporaryDirectory(prefix="shadowline-abuse-") as tmp:
        work = Path(tmp)
        stack = ScorerStack.up(work / "stack", model.onnx_bytes, spares=0)
        scorer = start_scorer(work, stack.env)
        try:
            scorer.wait_ready()
            wait_for_scorer(scorer, production="v1", shadows=0)
            load(scorer.url, "scorer", rate=args.rate, duration_s=2.0)  # warm-up
            runs = []
            for _ in range(args.reps):
                for abusers in (0, args.abusers):
                    runs.append(
                        one_run(
                            scorer.url, args.rate, args.seconds, abusers, args.only, args.abuse_rate
                        )
                    )
                    print(json.dumps(runs[-1]), flush=True)
        finally:
            scorer.stop()
            stack.down()
    alone = statistics.median(r["normal_p99_ms"] for r in runs if r["abusers"] == 0)
    abused = statistics.median(r["normal_p99_ms"] for r in runs if r["abusers"] > 0)
    summary = {
        "rate": args.rate,
        "seconds": args.seconds,
        "reps": args.reps,
        "abusers": args.abusers,
        "abuse_rate": args.abuse_rate or "as fast as they go",
        "p99_alone_ms": alone,
        "p99_with_abuse_ms": abused,
        "ratio": round(abused / alone, 2),
        "within_2x": abused <= 2 * alone,
        "cpus": os.cpu_count(),
        "runs": runs,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    if args.out is not None:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
