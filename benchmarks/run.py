"""`make bench`: every server and scenario in ONE run, repetitions interleaved.

    python -m benchmarks.run [--reps 3] [--out docs] [--scorer auto|off] [--quick] [--no-pin]

Order: train the model; time onnxruntime in-process (and the input adapter registration
composes for other layouts: benchmarks/adapter.py); start the servers (hello-world, the
scoring floor of benchmarks/floor_app.py, naive FastAPI, the Shadowline scorer with its
LocalStack and its event-loop lag probe on); warm up; calibrate (one short max-throughput run
each, which fixes the open-loop rates); then ``reps`` rounds, the server order rotating each
round, of: max throughput (closed loop, 16 connections) for every server; latency at a fixed
rate (half the naive maximum) for every server; pinned mode (floor, scorer, naive: the server
and its children on one core, this process and the generator on the other) when the machine
has two cores; the scorer with 0, 1 and 3 shadows at half its own maximum; the shadow set
changed under that load; promotions every 5 s under it.  Then the payload mix, one broker
outage under load, the shedding ramp and py-spy profiles (pinned max throughput, 3 shadows).
Writes ``<out>/benchmarks.md``, ``<out>/bench/*.png``, ``<out>/bench/results.json`` and, for
full runs, ``<out>/bench/history.json``.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.adapter import adapter_cost
from benchmarks.affinity import pinned_plan
from benchmarks.checks import update_history
from benchmarks.context import QUICK, SMOKE, Context, Durations
from benchmarks.floor import inference_floor
from benchmarks.load import MIX, mixed_payloads
from benchmarks.model import HEAVY_TREES, BenchModel, train
from benchmarks.report import PROBE_OFF
from benchmarks.scenarios import outage, rotate, scorer_rep, shed_ramp
from benchmarks.servers import (
    BenchError,
    Server,
    start_floor,
    start_hello,
    start_naive,
    start_scorer,
    wait_for_scorer,
)

WORK_DIR = Path(".shadowline/bench")
PINNED_SERVERS = ("floor", "scorer", PROBE_OFF, "scorer-kafka-python", "naive")
# A second scorer with the other Kafka client (kafka-python; the default is confluent-kafka),
# when this checkout has the setting for it (SHADOWLINE_KAFKA_CLIENT): max throughput, fixed
# rate and pinned, beside the default one.
SECOND_CLIENT = "scorer-kafka-python"
# The scorer measures its event loop's lag in the bench (docs/benchmarks.md reports it).
SCORER_BENCH_ENV = {"SHADOWLINE_LAG_PROBE": "true"}
# The two runs the 3-shadow bound compares, in each repetition.
RUNS_COMPARED = ("shadows0", "shadows3")
# PROBE_OFF, the scorer as it ships (the lag probe off, its default): max throughput, fixed
# rate and pinned, beside the probed one.  The probe is the bench's instrument for the hold
# bound, and it costs the scorer about 5% of its pinned throughput (3 interleaved pairs on the
# 2-core bench machine: 0.637x against 0.604x the floor), so the throughput and latency bounds
# judge this one (benchmarks.report.throughput_scorer); the scenarios run the probed one.
# The scorers besides the measured one, paused while its scenarios run.
EXTRA_SCORERS = (SECOND_CLIENT, PROBE_OFF)


def scorer_available() -> str | None:
    """None when ``shadowline serve`` and the registry API exist in this checkout, else why
    not."""
    if importlib.util.find_spec("registry.lifecycle") is None:
        return "the registry API (registry/lifecycle.py) is not in this checkout"
    from service import cli

    if not any(c.name == "serve" for c in cli.app.registered_commands):
        return "`shadowline serve` is not in this checkout"
    return None


def kafka_clients() -> bool:
    """True when the scorer can choose its Kafka client (SHADOWLINE_KAFKA_CLIENT)."""
    from service.settings import ServiceSettings

    return "kafka_client" in ServiceSettings.model_fields


def start_extra_scorer(ctx: Context, work: Path, env: dict[str, str], name: str) -> None:
    """Another scorer on the same stack (``EXTRA_SCORERS``); if it cannot start, the bench
    goes on without it and the log says why."""
    server = start_scorer(work, env, ctx.args.scorer_workers, name)
    try:
        server.wait_ready()
    except BenchError as exc:
        print(f"{name} not usable, measured without it: {exc}", file=sys.stderr, flush=True)
        server.stop()
        return
    ctx.servers[name] = server


def extra_scorers(ctx: Context, *, paused: bool) -> None:
    """Pause the other scorers while the scorer's own scenarios run (they follow the same
    registry, so they would load every shadow and promoted model beside the one measured);
    continue them, caught up with the registry, for the next repetition's baseline runs."""
    for name in EXTRA_SCORERS:
        server = ctx.servers.get(name)
        if server is None:
            continue
        server.pause(paused)
        if not paused:
            _, raw = ctx.servers["scorer"].get("/readyz")
            production = (json.loads(raw).get("production") or {}).get("version") if raw else None
            wait_for_scorer(server, shadows=0, production=production, timeout_s=60.0)


def setup_scorer(ctx: Context, work: Path, onnx_bytes: bytes, heavy: BenchModel) -> str:
    """Start the LocalStack, register the models (``heavy``: the shedding ramp's shadow),
    start ``shadowline serve``; "run", or why the scorer could not be set up (the baselines
    still run)."""
    d, args = ctx.durations, ctx.args
    try:
        # Imported by name: it needs the registry API, which a checkout without the scorer
        # lacks (and the type checker must not follow it there).
        stack_module = importlib.import_module("benchmarks.stack")
        spares = int(args.reps * (d.promotions // d.promotion_every + 2)) + 2  # + 1 at rest
        ctx.stack = stack_module.ScorerStack.up(work / "stack", onnx_bytes, spares, heavy)
        env = {**ctx.stack.env, **SCORER_BENCH_ENV}
        ctx.servers["scorer"] = start_scorer(work, env, args.scorer_workers)
        ctx.servers["scorer"].wait_ready()
        if kafka_clients() and args.second_client:
            start_extra_scorer(
                ctx, work, {**env, "SHADOWLINE_KAFKA_CLIENT": "kafka-python"}, SECOND_CLIENT
            )
        start_extra_scorer(ctx, work, dict(ctx.stack.env), PROBE_OFF)
    except Exception as exc:  # any failure of the scorer's side is reported, not fatal
        print(f"scorer not usable: {exc}", file=sys.stderr, flush=True)
        for name in ("scorer", *EXTRA_SCORERS):
            if name in ctx.servers:
                ctx.servers.pop(name).stop()
        if ctx.stack is not None:
            ctx.stack.down()
            ctx.stack = None
        return f"failed to start: {type(exc).__name__}: {str(exc)[:300]}"
    return "run"


def server_command(server: Server) -> str:
    """The server's command line as a reader would type it (venv-relative, port elided)."""
    args = list(server.cmd)
    args[0] = ".venv/bin/" + Path(args[0]).name
    return " ".join(args).replace(str(server.port), "<port>")


def baseline_rep(ctx: Context, r: int, names: list[str], fixed_rate: float) -> dict[str, Any]:
    """One repetition of every server's max throughput, fixed rate and (pinned mode) pinned
    max throughput, the server order rotating with ``r``."""
    d = ctx.durations
    rep: dict[str, Any] = {}
    order = rotate(names, r)
    for name in order:
        print(f"rep {r + 1}: max {name}", flush=True)
        rep[f"max/{name}"] = ctx.load(ctx.servers[name].url, name, rate=None, duration_s=d.max)
    for name in order:
        print(f"rep {r + 1}: fixed rate {fixed_rate} {name}", flush=True)
        rep[f"fixed/{name}"] = ctx.load(
            ctx.servers[name].url, name, rate=fixed_rate, duration_s=d.fixed
        )
    if ctx.cores is not None:
        for name in rotate([n for n in PINNED_SERVERS if n in ctx.servers], r):
            print(f"rep {r + 1}: pinned max {name}", flush=True)
            rep[f"pinned/{name}"] = ctx.pinned_load(name, rate=None, duration_s=d.pinned)
    return rep


def scorer_extras(ctx: Context, results: dict[str, Any], fixed: float, half: float) -> None:
    """After the repetitions: the payload mix, the shedding ramp, the broker outage."""
    d = ctx.durations
    print(f"scorer: mixed payloads at {fixed}/s", flush=True)
    results["mixed"] = ctx.load(
        ctx.servers["scorer"].url,
        "scorer",
        rate=fixed,
        duration_s=d.fixed,
        payload_set=mixed_payloads(),
        mix=MIX,
    )
    try:  # before the outage: a broker restart leaves the producer busy for a while
        results["ramp"] = shed_ramp(ctx, half)
    except BenchError as exc:
        results["ramp_error"] = str(exc)
    print("broker outage under load", flush=True)
    try:
        ctx.stack.set_shadows(1)
        wait_for_scorer(ctx.servers["scorer"], shadows=1)
        results["outage"] = outage(ctx, half)
        ctx.stack.set_shadows(0)
        wait_for_scorer(ctx.servers["scorer"], shadows=0)
    except BenchError as exc:
        results["outage_error"] = str(exc)


def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    d = SMOKE if args.smoke else QUICK if args.quick else Durations()
    began = time.monotonic()
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    results: dict[str, Any] = {"machine": report.machine_info(), "reps": [], "durations": vars(d)}
    results["commands"] = [" ".join(["python", "-m", "benchmarks.run", *sys.argv[1:]])]
    results["mode"] = "smoke" if args.smoke else "quick" if args.quick else "full"
    print("training the benchmark model ...", flush=True)
    model = train(rows=2_000, trees=20) if args.smoke else train()
    model_path = work / "model.onnx"
    model_path.write_bytes(model.onnx_bytes)
    results["model"] = {
        "trees": model.n_trees,
        "inputs": 30,
        "bytes": len(model.onnx_bytes),
        "train_rows": model.train_rows,
    }
    results["floor"] = inference_floor(model.onnx_bytes, seconds=2.0 if d == Durations() else 0.2)
    print("timing the input adapter ...", flush=True)
    results["adapter"] = adapter_cost(model.onnx_bytes, seconds=6.0 if d == Durations() else 0.2)
    why_not = scorer_available() if args.scorer == "auto" else "disabled with --scorer off"
    results["scorer_status"] = why_not or "run"
    cores = pinned_plan() if args.pin else None
    results["pinned"] = (
        {"server_cpus": sorted(cores[0]), "generator_cpus": sorted(cores[1])}
        if cores
        else {"skipped": "--no-pin" if not args.pin else "fewer than 2 CPUs"}
    )
    ctx = Context(args, d, {}, isolate=not args.smoke, cores=cores)
    try:
        ctx.servers["hello"] = start_hello(work)
        ctx.servers["floor"] = start_floor(work, model_path)
        ctx.servers["naive"] = start_naive(work, model_path)
        for server in ctx.servers.values():
            server.wait_ready()
        if why_not is None:
            print("training the shedding ramp's heavy shadow ...", flush=True)
            heavy = train(rows=2_000, trees=40) if args.smoke else train(trees=HEAVY_TREES)
            results["model"]["heavy_shadow_trees"] = heavy.n_trees
            results["scorer_status"] = setup_scorer(ctx, work, model.onnx_bytes, heavy)
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
            extra_scorers(ctx, paused=False)
            rep = baseline_rep(ctx, r, names, fixed_rate)
            extra_scorers(ctx, paused=True)
            if half_rate is not None:
                try:
                    scorer_rep(ctx, r, half_rate, rep)
                except BenchError as exc:  # keep the baselines' numbers; say what failed
                    results["scorer_status"] = f"failed in repetition {r + 1}: {exc}"
                    half_rate = None
            results["reps"].append(rep)
            results.setdefault("load_per_rep", []).append(round(os.getloadavg()[0], 2))
        if half_rate is not None:
            scorer_extras(ctx, results, fixed_rate, half_rate)
            if args.profile:
                from benchmarks.profile import profile_scorer

                results["profiles"] = profile_scorer(ctx, half_rate, args.out / "bench")
        results["targets"] = report.targets(results)
    finally:
        for server in ctx.servers.values():
            server.stop()
        if ctx.stack is not None:
            ctx.stack.down()
    results["elapsed_s"] = round(time.monotonic() - began, 1)
    return results


def keep_history(results: dict[str, Any], out: Path) -> None:
    """A full run adds its 3-shadow bound's per-repetition values to ``bench/history.json``
    (the last three runs are kept; quick and smoke runs are not history)."""
    row = next((t for t in results.get("targets", []) if t.get("key") == "shadows3"), None)
    if results["mode"] != "full" or row is None or row["met"] is None:
        return
    entry = {
        "date_utc": results["machine"]["date_utc"],
        "code": results["machine"]["code"],
        "per_rep": row["per_rep"],
        "control_per_rep": row.get("control_per_rep", []),
        "bound": row["bound"],
        "met": row["met"],
        "load_average_at_start": results["machine"]["load_average_at_start"],
        **machine_during(results),
    }
    results["history"] = update_history(out / "bench" / "history.json", entry)


def machine_during(results: dict[str, Any]) -> dict[str, Any]:
    """What the machine was doing while the 3-shadow bound was measured, for the history: the
    hypervisor's steal over each repetition's shadows-off and 3-shadow runs together (ms,
    summed over the CPUs; None where not read), and how fast it ran (the hello-world's
    closed-loop maximum, median of the repetitions), so that runs on a busy or slow host can
    be told apart."""
    steal: list[int | None] = []
    for rep in results["reps"]:
        parts = [((rep.get(key) or {}).get("cpu") or {}).get("total") for key in RUNS_COMPARED]
        known = [p for p in parts if p is not None]
        steal.append(sum(p.get("steal_ms", 0) for p in known) if len(known) == len(parts) else None)
    hello = [rep["max/hello"]["rate_achieved"] for rep in results["reps"] if "max/hello" in rep]
    return {
        "steal_ms_per_rep": steal,
        "hello_max_rps": round(statistics.median(hello)) if hello else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--scorer", choices=("auto", "off"), default="auto")
    parser.add_argument("--scorer-workers", type=int, default=None)
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    parser.add_argument(
        "--no-kafka-python",
        dest="second_client",
        action="store_false",
        help="no second scorer with SHADOWLINE_KAFKA_CLIENT=kafka-python",
    )
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false", help="skip the pinned-mode runs"
    )
    parser.add_argument("--quick", action="store_true", help="a two-minute trial run")
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
    keep_history(results, args.out)
    report.write(results, args.out)
    print(f"wrote {args.out / 'benchmarks.md'} in {results['elapsed_s']} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
