"""`make bench`: every server and scenario in ONE run, repetitions interleaved.

    python -m benchmarks.run [--reps 3] [--out docs] [--scorer auto|off] [--quick]

Order: train the model; time onnxruntime in-process (the inference floor, and the input
adapter registration composes for other layouts: benchmarks/adapter.py); start the servers
(hello-world, naive FastAPI, the Shadowline scorer with its LocalStack); warm up; calibrate
(one short max-throughput run each, which fixes the open-loop rates); then ``reps`` rounds, the
server order rotating each round, of: max throughput (closed loop, 16 connections) for every
server; latency at a fixed rate (half the naive maximum) for every server; the scorer with 0, 1
and 3 shadows at half its own maximum; promotions every 5 s under that load.  Finally one broker
outage under load and, where a target is missed, py-spy profiles.  Writes
``<out>/benchmarks.md``, ``<out>/bench/*.png`` and ``<out>/bench/results.json``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.adapter import adapter_cost
from benchmarks.floor import inference_floor
from benchmarks.load import MIX, counter_deltas, load, mixed_payloads, scrape
from benchmarks.model import train
from benchmarks.servers import (
    BenchError,
    Server,
    start_hello,
    start_naive,
    start_scorer,
    wait_for_scorer,
)

WORK_DIR = Path(".shadowline/bench")


@dataclass(frozen=True)
class Durations:
    warm: float = 2.0
    calibrate: float = 3.0
    max: float = 6.0
    fixed: float = 6.0
    shadows: float = 8.0
    promotions: float = 16.0
    promotion_every: float = 5.0
    outage: float = 21.0
    outage_at: float = 5.0
    outage_for: float = 7.0
    profile: float = 8.0


QUICK = Durations(0.5, 0.5, 1.0, 1.0, 1.0, 3.0, 1.0, 4.0, 1.0, 1.5, 2.0)
SMOKE = Durations(0.2, 0.3, 0.3, 0.3, 0.3, 1.0, 0.5, 1.5, 0.3, 0.5, 1.0)  # the test suite's


def scorer_available() -> str | None:
    """None when ``shadowline serve`` and the registry API exist in this checkout, else why
    not."""
    if importlib.util.find_spec("registry.lifecycle") is None:
        return "the registry API (registry/lifecycle.py) is not in this checkout"
    from service import cli

    if not any(c.name == "serve" for c in cli.app.registered_commands):
        return "`shadowline serve` is not in this checkout"
    return None


def scorer_run(ctx: Context, rate: float, duration_s: float, during: Any = None) -> dict[str, Any]:
    """An open-loop run against the scorer with its counter deltas; ``during(t0)`` runs in a
    thread alongside (promotions, broker outage) and returns its events."""
    scorer = ctx.servers["scorer"]
    before = scrape(scorer.url)
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
    result["scorer"] = counter_deltas(before, scrape(scorer.url))
    result["events"] = events
    return result


@dataclass
class Context:
    args: argparse.Namespace
    durations: Durations
    servers: dict[str, Server]
    stack: Any = None
    isolate: bool = True  # each load in a process of its own (off for --smoke: seconds count)

    def load(self, url: str, server: str, **kw: Any) -> dict[str, Any]:
        """One load run, with the server's CPU time per completed request."""
        before = self.servers[server].cpu_seconds()
        result = load(url, server, isolate=self.isolate, **kw)
        used = self.servers[server].cpu_seconds() - before
        done = result["completed"]
        result["server_cpu_us_per_request"] = round(1e6 * used / done, 1) if done else None
        return result


def promotions(ctx: Context, rate: float) -> dict[str, Any]:
    d = ctx.durations

    def promote_every(t0: float) -> list[dict[str, Any]]:
        events = []
        at = d.promotion_every / 2
        while at < d.promotions - 1:
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            version = ctx.stack.promote_next()
            events.append({"second": round(time.monotonic() - t0, 2), "promoted": version})
            at += d.promotion_every
        return events

    result = scorer_run(ctx, rate, d.promotions, promote_every)
    last = result["events"][-1]["promoted"] if result["events"] else None
    wait_for_scorer(ctx.servers["scorer"], production=last)
    return result


def outage(ctx: Context, rate: float) -> dict[str, Any]:
    d = ctx.durations

    def kill_and_restart(t0: float) -> list[dict[str, Any]]:
        time.sleep(max(0.0, t0 + d.outage_at - time.monotonic()))
        ctx.stack.kill_broker()
        events = [{"second": round(time.monotonic() - t0, 2), "broker": "killed"}]
        time.sleep(max(0.0, t0 + d.outage_at + d.outage_for - time.monotonic()))
        ctx.stack.restart_broker()
        events.append({"second": round(time.monotonic() - t0, 2), "broker": "back"})
        return events

    return scorer_run(ctx, rate, d.outage, kill_and_restart)


def setup_scorer(ctx: Context, work: Path, onnx_bytes: bytes) -> str:
    """Start the LocalStack, register the models, start ``shadowline serve``; "run", or why
    the scorer could not be set up (the baselines still run)."""
    d, args = ctx.durations, ctx.args
    try:
        # Imported by name: it needs the registry API, which a checkout without the scorer
        # lacks (and the type checker must not follow it there).
        stack_module = importlib.import_module("benchmarks.stack")
        spares = int(args.reps * (d.promotions // d.promotion_every + 1)) + 2
        ctx.stack = stack_module.ScorerStack.up(work / "stack", onnx_bytes, spares)
        ctx.servers["scorer"] = start_scorer(work, ctx.stack.env, args.scorer_workers)
        ctx.servers["scorer"].wait_ready()
    except Exception as exc:  # any failure of the scorer's side is reported, not fatal
        print(f"scorer not usable: {exc}", file=sys.stderr, flush=True)
        if "scorer" in ctx.servers:
            ctx.servers.pop("scorer").stop()
        if ctx.stack is not None:
            ctx.stack.down()
            ctx.stack = None
        return f"failed to start: {type(exc).__name__}: {str(exc)[:300]}"
    return "run"


def scorer_rep(ctx: Context, r: int, rate: float, rep: dict[str, Any]) -> None:
    """One repetition of the scorer's scenarios: 0, 1, 3 shadows (order rotating), then
    promotions every few seconds with no shadows."""
    for n in rotate([0, 1, 3], r):
        print(f"rep {r + 1}: scorer with {n} shadows at {rate}/s", flush=True)
        ctx.stack.set_shadows(n)
        wait_for_scorer(ctx.servers["scorer"], shadows=n)
        rep[f"shadows{n}"] = scorer_run(ctx, rate, ctx.durations.shadows)
    ctx.stack.set_shadows(0)
    wait_for_scorer(ctx.servers["scorer"], shadows=0)
    print(f"rep {r + 1}: promotions every {ctx.durations.promotion_every} s", flush=True)
    rep["promotions"] = promotions(ctx, rate)


def server_command(server: Server) -> str:
    """The server's command line as a reader would type it (venv-relative, port elided)."""
    args = list(server.cmd)
    args[0] = ".venv/bin/" + Path(args[0]).name
    return " ".join(args).replace(str(server.port), "<port>")


def rotate(items: list[Any], r: int) -> list[Any]:
    r %= len(items)
    return items[r:] + items[:r]


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    d = SMOKE if args.smoke else QUICK if args.quick else Durations()
    began = time.monotonic()
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results: dict[str, Any] = {"machine": report.machine_info(), "reps": [], "durations": vars(d)}
    results["commands"] = [" ".join(["python", "-m", "benchmarks.run", *sys.argv[1:]])]
    print("training the benchmark model ...", flush=True)
    model = train(rows=2_000, trees=20) if args.smoke else train()
    model_path = work / "model.onnx"
    model_path.write_bytes(model.onnx_bytes)
    results["model"] = {"trees": model.n_trees, "inputs": 30, "bytes": len(model.onnx_bytes),
                        "train_rows": model.train_rows}  # fmt: skip
    results["floor"] = inference_floor(model.onnx_bytes, seconds=2.0 if d == Durations() else 0.2)
    print("timing the input adapter ...", flush=True)
    results["adapter"] = adapter_cost(model.onnx_bytes, seconds=6.0 if d == Durations() else 0.2)
    why_not = scorer_available() if args.scorer == "auto" else "disabled with --scorer off"
    results["scorer_status"] = why_not or "run"
    ctx = Context(args, d, {}, isolate=not args.smoke)
    try:
        ctx.servers["hello"] = start_hello(work)
        ctx.servers["naive"] = start_naive(work, model_path)
        for server in ctx.servers.values():
            server.wait_ready()
        if why_not is None:
            results["scorer_status"] = setup_scorer(ctx, work, model.onnx_bytes)
        names = list(ctx.servers)
        results["servers"] = {n: server_command(s) for n, s in ctx.servers.items()}
        print(f"servers ready: {names}", flush=True)
        for name in names:
            ctx.load(ctx.servers[name].url, name, rate=None, duration_s=d.warm)
        cal = {n: ctx.load(ctx.servers[n].url, n, rate=None, duration_s=d.calibrate) for n in names}
        cal["hello (2 generator procs)"] = ctx.load(
            ctx.servers["hello"].url, "hello", rate=None, duration_s=d.calibrate, procs=2
        )
        results["calibration"] = cal
        fixed_rate = max(10.0, round(0.5 * cal["naive"]["rate_achieved"], -1))
        half_rate = (
            max(10.0, round(0.5 * cal["scorer"]["rate_achieved"], -1)) if "scorer" in cal else None
        )
        results["rates"] = {"fixed": fixed_rate, "scorer_half": half_rate}
        for r in range(args.reps):
            rep: dict[str, Any] = {}
            order = rotate(names, r)
            for name in order:
                print(f"rep {r + 1}: max {name}", flush=True)
                url = ctx.servers[name].url
                rep[f"max/{name}"] = ctx.load(url, name, rate=None, duration_s=d.max)
            for name in order:
                print(f"rep {r + 1}: fixed rate {fixed_rate} {name}", flush=True)
                rep[f"fixed/{name}"] = ctx.load(
                    ctx.servers[name].url, name, rate=fixed_rate, duration_s=d.fixed
                )
            if half_rate is not None:
                try:
                    scorer_rep(ctx, r, half_rate, rep)
                except BenchError as exc:  # keep the baselines' numbers; say what failed
                    results["scorer_status"] = f"failed in repetition {r + 1}: {exc}"
                    half_rate = None
            results["reps"].append(rep)
            results.setdefault("load_per_rep", []).append(round(os.getloadavg()[0], 2))
        if half_rate is not None:
            print(f"scorer: mixed payloads at {fixed_rate}/s", flush=True)
            results["mixed"] = ctx.load(
                ctx.servers["scorer"].url, "scorer", rate=fixed_rate, duration_s=d.fixed,
                payload_set=mixed_payloads(), mix=MIX,
            )  # fmt: skip
            print("broker outage under load", flush=True)
            try:
                ctx.stack.set_shadows(1)
                wait_for_scorer(ctx.servers["scorer"], shadows=1)
                results["outage"] = outage(ctx, half_rate)
                ctx.stack.set_shadows(0)
            except BenchError as exc:
                results["outage_error"] = str(exc)
        results["targets"] = report.targets(results)
        if (
            half_rate is not None
            and args.profile
            and not all(t["met"] for t in results["targets"] if t["met"] is not None)
        ):
            from benchmarks.profile import profile_scorer

            results["profiles"] = profile_scorer(ctx, half_rate, args.out / "bench")
    finally:
        for server in ctx.servers.values():
            server.stop()
        if ctx.stack is not None:
            ctx.stack.down()
    results["elapsed_s"] = round(time.monotonic() - began, 1)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--scorer", choices=("auto", "off"), default="auto")
    parser.add_argument("--scorer-workers", type=int, default=None)
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument("--quick", action="store_true", help="a one-minute trial run")
    parser.add_argument(
        "--smoke", action="store_true", help="seconds: tiny model, tiny runs (the test suite's)"
    )
    parser.add_argument("--work", type=Path, default=WORK_DIR, help="scratch folder")
    args = parser.parse_args(argv)
    try:
        results = run_bench(args)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    report.write(results, args.out)
    print(f"wrote {args.out / 'benchmarks.md'} in {results['elapsed_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
