"""Interleaved A/B of scorer variants in pinned mode, each pair also against the floor.

A change to the request path is worth a few percent at most, and this machine's speed moves
by more than that between two runs of ``make bench`` (its hello-world rate went from 10,900 to
29,600 req/s between two of them).  So a change is judged here, not across bench runs: every
variant runs on one stack, in pairs, the order alternating each pair, each run pinned as in
the bench (the server and its children on one core, the load generator, Redis and the broker
on the other; closed loop, 16 connections).  Each pair gives each variant's throughput, p99
and CPU a request (event-loop thread, other threads, the sidecar), and its ratio to the first
variant and to the floor measured in the same pair.

A variant is a git revision of this checkout (checked out in a worktree, which its scorer
imports first through ``PYTHONPATH``), ``.`` for the checkout as it is, plus any
``SHADOWLINE_*`` settings::

    python -m benchmarks.ab --variant base=HEAD~1 --variant new=. --pairs 8
    python -m benchmarks.ab --variant a=. --variant b=. --env b:SHADOWLINE_SHADOW_BATCH_MAX=32

Two variants of the same revision (an A/A run) show the spread a real difference must beat.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.affinity import pinned_plan
from benchmarks.context import Context, Durations
from benchmarks.load import payloads
from benchmarks.model import train
from benchmarks.servers import (
    REPO_ROOT,
    BenchError,
    Server,
    start_floor,
    start_scorer,
    wait_for_scorer,
)

WORK_DIR = Path(".shadowline/ab")
FLOOR = "floor"


@dataclass
class Variant:
    """A scorer to measure: a revision (``.``: this checkout) and its extra settings."""

    name: str
    revision: str
    env: dict[str, str] = field(default_factory=dict)


def parse_variants(specs: list[str], envs: list[str]) -> list[Variant]:
    """``NAME=REVISION`` specs and ``NAME:KEY=VALUE`` settings as variants.  Raises
    ``ValueError`` naming the spec that is malformed, a repeated name or a setting for a
    variant not given."""
    variants: dict[str, Variant] = {}
    for spec in specs:
        name, sep, revision = spec.partition("=")
        if not sep or not name or not revision:
            raise ValueError(f"--variant {spec!r}: expected NAME=REVISION (e.g. base=HEAD~1)")
        if name in variants or name == FLOOR:
            raise ValueError(f"--variant {spec!r}: the name {name!r} is taken")
        variants[name] = Variant(name, revision)
    for setting in envs:
        name, sep, pair = setting.partition(":")
        key, eq, value = pair.partition("=")
        if not sep or not eq or not key:
            raise ValueError(f"--env {setting!r}: expected NAME:KEY=VALUE")
        if name not in variants:
            raise ValueError(f"--env {setting!r}: no variant named {name!r}")
        variants[name].env[key] = value
    if len(variants) < 2:
        raise ValueError("give at least two variants (--variant NAME=REVISION, twice)")
    return list(variants.values())


def pair_ratios(pair: dict[str, dict[str, Any]], base: str) -> dict[str, dict[str, float]]:
    """Each variant's throughput, p99 and CPU a request against ``base`` and the floor of the
    same pair."""
    out: dict[str, dict[str, float]] = {}
    for name, run in pair.items():
        if name == FLOOR:
            continue
        ratios: dict[str, float] = {}
        for ref in (base, FLOOR):
            other = pair[ref]
            ratios[f"rps vs {ref}"] = run["rps"] / other["rps"]
            ratios[f"p99 vs {ref}"] = run["p99_ms"] / other["p99_ms"]
            ratios[f"cpu vs {ref}"] = run["cpu_us"] / other["cpu_us"]
        out[name] = ratios
    return out


def summary(pairs: list[dict[str, dict[str, Any]]], base: str) -> str:
    """A Markdown table: each variant's medians and each pair's ratios to ``base``."""
    names = list(pairs[0])
    ratios = [pair_ratios(p, base) for p in pairs]
    lines = [
        "| server | req/s | p99 ms | CPU us/request (loop) | rps vs "
        f"{base}, each pair | p99 vs {base}, each pair | rps vs floor | p99 vs floor |",
        "|---|---|---|---|---|---|---|---|",
    ]

    def med(name: str, key: str) -> float:
        return float(statistics.median(p[name][key] for p in pairs))

    for name in names:
        cells = [
            f"{med(name, 'rps'):,.0f}",
            f"{med(name, 'p99_ms'):.2f}",
            f"{med(name, 'cpu_us'):.0f} ({med(name, 'loop_us'):.0f})",
        ]
        if name == FLOOR:
            cells += ["", "", "1", "1"]
        else:
            for key in (f"rps vs {base}", f"p99 vs {base}"):
                cells.append(", ".join(f"{r[name][key]:.2f}" for r in ratios))
            for key in ("rps vs floor", "p99 vs floor"):
                cells.append(f"{statistics.median(r[name][key] for r in ratios):.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@contextlib.contextmanager
def checkouts(variants: list[Variant], work: Path) -> Iterator[dict[str, Path]]:
    """Each revision checked out in a worktree of this repository (``.``: the checkout
    itself); the worktrees are removed afterwards."""
    paths: dict[str, Path] = {}
    made: list[Path] = []
    try:
        for revision in {v.revision for v in variants}:
            if revision == ".":
                paths[revision] = REPO_ROOT
                continue
            path = work / "trees" / revision.replace("/", "_").replace("~", "-")
            shutil.rmtree(path, ignore_errors=True)
            git = ["git", "-C", str(REPO_ROOT), "worktree", "add", "--detach", str(path)]
            done = subprocess.run([*git, revision], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise BenchError(f"revision {revision!r}: {done.stderr.strip()}")
            made.append(path)
            paths[revision] = path
        yield paths
    finally:
        for path in made:
            remove = ["git", "-C", str(REPO_ROOT), "worktree", "remove", "--force", str(path)]
            subprocess.run(remove, capture_output=True, check=False)


def measure(ctx: Context, name: str, seconds: float) -> dict[str, Any]:
    """One closed-loop run against server ``name``, pinned as the bench pins (its
    ``Context.pinned_load``): its throughput, p99 and CPU a request."""
    kind = FLOOR if name == FLOOR else "scorer"
    result = ctx.pinned_load(name, rate=None, duration_s=seconds, payload_set=payloads(kind))
    if not result["completed"]:
        log = ctx.servers[name].log
        raise BenchError(f"{name}: no request completed in {seconds:g} s (its log: {log})")
    parts = result["server_cpu_parts_us_per_request"]
    return {
        "rps": result["rate_achieved"],
        "p99_ms": result["latency_ms"]["p99"],
        "cpu_us": result["server_cpu_us_per_request"],
        "loop_us": parts["loop"],
        "children_us": parts["children"],
        "failed": result["failed"],
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.stack import ScorerStack  # needs the registry API: not at import time

    variants = parse_variants(args.variant, args.env)
    cores = pinned_plan()
    if cores is None:
        raise BenchError("pinned mode needs at least 2 CPUs")
    work = args.work.resolve()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    model = train()
    model_path = work / "model.onnx"
    model_path.write_bytes(model.onnx_bytes)
    stack = ScorerStack.up(work / "stack", model.onnx_bytes, spares=0)
    servers: dict[str, Server] = {}
    ctx = Context(args, Durations(), servers, stack=stack, cores=cores)
    try:
        with checkouts(variants, work) as paths:
            # One at a time: a server binds its port only once it runs, and the next one's
            # free port could otherwise be the same (it then fails to start, and the first
            # one would be measured under its name).
            servers[FLOOR] = start_floor(work, model_path)
            servers[FLOOR].wait_ready()
            for v in variants:
                env = {**stack.env, **v.env, "PYTHONPATH": str(paths[v.revision])}
                servers[v.name] = start_scorer(work, env, name=v.name)
                servers[v.name].wait_ready()
                wait_for_scorer(servers[v.name], shadows=0)
            names = list(servers)
            for name in names:  # warm-up, not kept
                measure(ctx, name, min(2.0, args.seconds))
            pairs: list[dict[str, dict[str, Any]]] = []
            for i in range(args.pairs):
                order = names if i % 2 == 0 else names[::-1]
                pair = {name: measure(ctx, name, args.seconds) for name in order}
                pairs.append({name: pair[name] for name in names})
                print(f"pair {i + 1}: " + json.dumps(pairs[-1]), flush=True)
    finally:
        for server in servers.values():
            server.stop()
        stack.down()
    base = variants[0].name
    return {
        "variants": [vars(v) for v in variants],
        "seconds": args.seconds,
        "pairs": pairs,
        "ratios": [pair_ratios(p, base) for p in pairs],
        "table": summary(pairs, base),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ab", description=__doc__)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=REVISION")
    parser.add_argument("--env", action="append", default=[], metavar="NAME:KEY=VALUE")
    parser.add_argument("--pairs", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=6.0, help="each run's length")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--work", type=Path, default=WORK_DIR, help="scratch folder")
    args = parser.parse_args(argv)
    try:
        parse_variants(args.variant, args.env)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        results = run(args)
    except BenchError as exc:
        print(f"ab: {exc}", file=sys.stderr)
        return 1
    print(results["table"])
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
