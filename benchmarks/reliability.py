"""`make reliability`: the fault matrix, run against a real scorer, Redis and broker.

    python -m benchmarks.reliability [--quick] [--only ROW ...] [--rate N] [--out docs]

One environment for the whole run (:mod:`benchmarks.faults`: a scorer, Redis, the broker, a
watcher on the scores topic).  Each row of the matrix is one function
(:mod:`benchmarks.fault_kills`, :mod:`benchmarks.fault_models`, :mod:`benchmarks.fault_load`):
it puts the scorer under open-loop load (:mod:`loadtest`), injects its fault, and checks what
must hold, returning a :class:`Row`.  A :class:`benchmarks.watch.TopicWatcher` reads the scores
topic all along, so rows can check that every answered request's record arrived, once.

Writes the generated section of ``<out>/reliability.md`` (between its markers; the rest of the
page is kept) and ``<out>/reliability/results.json``.  Exits 1 when a row fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.faults import QUICK, WORK_DIR, Durations, Env, Row, setup
from benchmarks.servers import BenchError


def rows() -> dict[str, Callable[[Env], Row]]:
    """Every row of the matrix, in the order it runs (the soak last)."""
    from benchmarks import fault_kills, fault_load, fault_models

    return {
        "redis_kill": fault_kills.redis_kill,
        "broker_kill": fault_kills.broker_kill,
        "sidecar_kill": fault_kills.sidecar_kill,
        "scorer_kill": fault_kills.scorer_kill,
        "broker_outage": fault_kills.broker_outage,
        "corrupt_artifact": fault_models.corrupt_artifact,
        "missing_artifact": fault_models.missing_artifact,
        "concurrent_promotions": fault_models.concurrent_promotions,
        "interrupted_promotions": fault_models.interrupted_promotions,
        "abusive_bodies": fault_load.abusive_bodies,
        "soak": fault_load.soak,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.report import machine_info

    durations = QUICK if args.quick else Durations()
    rate = args.rate or (200.0 if args.quick else 400.0)
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    wanted = rows()
    unknown = sorted(set(args.only or ()) - set(wanted))
    if unknown:
        raise BenchError(f"no such row: {', '.join(unknown)} (rows: {', '.join(wanted)})")
    results: dict[str, Any] = {
        "machine": machine_info(),
        "mode": "quick" if args.quick else "full",
        "rate": rate,
        "durations": vars(durations),
        "rows": [],
        "started": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
        "command": " ".join(["python -m benchmarks.reliability", *sys.argv[1:]]),
    }
    began = time.monotonic()
    env = setup(work, durations, rate)
    try:
        for name, fn in wanted.items():
            if args.only and name not in args.only:
                continue
            print(f"row {name} ...", flush=True)
            row = _run_row(name, fn, env)
            print(
                f"row {name}: {'PASS' if row.passed else 'FAIL'} in {row.seconds:.0f} s; "
                + "; ".join(m for m, _ in row.checks),
                flush=True,
            )
            results["rows"].append(row.as_json())
    finally:
        env.watcher.close()
        env.scorer.stop()
        env.stack.down()
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["elapsed_s"] = round(time.monotonic() - began, 1)
    return results


def _run_row(name: str, fn: Callable[[Env], Row], env: Env) -> Row:
    began = time.monotonic()
    try:
        row = fn(env)
    except Exception as exc:  # a row that breaks is a failed row, the others still run
        row = Row(name=name, fault=name, load="-", must_hold=["the row runs to its end"])
        row.check(f"the row raised {type(exc).__name__}: {exc}", ok=False)
        try:
            env.recover()
        except Exception as again:  # the rows after this one will say what is wrong
            print(f"row {name}: could not recover: {again}", file=sys.stderr, flush=True)
    row.seconds = round(time.monotonic() - began, 1)
    row.data["load_average"] = round(os.getloadavg()[0], 2)
    return row


def merged(new: dict[str, Any], previous: Path) -> dict[str, Any]:
    """``--only`` re-runs some rows: put them into the previous results of the same mode (the
    other rows keep theirs), so the page stays one whole matrix; each re-run is listed."""
    if not previous.exists():
        return new
    old: dict[str, Any] = json.loads(previous.read_text(encoding="utf-8"))
    if old.get("mode") != new["mode"]:
        return new
    fresh = {row["name"]: row for row in new["rows"]}
    old["rows"] = [fresh.pop(row["name"], row) for row in old["rows"]] + list(fresh.values())
    reruns = old.setdefault("reruns", [])
    reruns.append(
        {
            "rows": [row["name"] for row in new["rows"]],
            "results": {row["name"]: "pass" if row["passed"] else "FAIL" for row in new["rows"]},
            "started": new["started"],
            "load_average_start": new["load_average_start"],
            "command": new["command"],
        }
    )
    return old


def main(argv: list[str] | None = None) -> int:
    from benchmarks.reliability_report import write

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="minutes: short outage and soak")
    parser.add_argument("--only", nargs="+", metavar="ROW", help="run these rows only")
    parser.add_argument("--rate", type=float, default=None, help="requests/s (400; quick 200)")
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--work", type=Path, default=WORK_DIR, help="scratch folder")
    args = parser.parse_args(argv)
    results = run(args)
    if args.only:
        results = merged(results, args.out / "reliability" / "results.json")
    write(results, args.out)
    failed = [row["name"] for row in results["rows"] if not row["passed"]]
    print(
        f"{len(results['rows']) - len(failed)} of {len(results['rows'])} rows pass"
        + (f"; failing: {', '.join(failed)}" if failed else ""),
        flush=True,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
