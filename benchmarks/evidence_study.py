"""`make evidence-study`: the evidence statistics against a known truth, at more repetitions
than the test suite affords, and what repeated looks do to the false-approval rate.

    python -m benchmarks.evidence_study [--reps 400] [--looks 10] [--out docs]

Uses the simulated world of ``tests/retrain/evidence/simulation.py`` (population values in
closed form) and the real analysis (``retrain.evidence.comparison.compare``).  Writes
``<out>/evidence-study.md`` with:

1. coverage of the 95% interval of the difference, and approvals of a truly better challenger;
2. approvals of a challenger truly worse by exactly the tolerance, at one look;
3. the same worse challenger analysed at ``looks`` successive times as traffic accumulates
   (a daily analysis), approved at ANY look: with the plain 97.5% bound at every look, and
   with the looks-corrected decision bound Shadowline uses;
4. the time and memory one analysis of 1,000,000 transactions takes.
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from registry.policy import ApprovalPolicy
from retrain.evidence.comparison import Options, compare
from tests.retrain.evidence.simulation import AS_OF, World

POLICY = ApprovalPolicy(min_shadow_records=1000, min_matured_frauds=50, tolerance=0.02)
WORLD = World(fraud_rate=0.08)
PER_LOOK = 1200  # transactions added between two looks (about 96 frauds)


@dataclass
class Row:
    what: str
    count: int
    reps: int

    @property
    def share(self) -> float:
        return self.count / self.reps


def _one(
    world: World, seed: int, n: int, looks: int = 1
) -> tuple[float | None, float | None, float | None]:
    rows, sampling = world.draw(np.random.default_rng(seed), n, delay_days=1.0)
    options = Options(as_of=AS_OF, seed=seed, looks=looks)
    evidence = compare(
        rows, sampling, version="v2", production_version="v1", options=options
    ).evidence
    ci = evidence.difference_ci
    return (ci.low if ci else None), (ci.high if ci else None), evidence.decision_low


def single_look(reps: int) -> list[Row]:
    truth = WORLD.truth().difference
    covered = approved = 0
    for seed in range(reps):
        low, high, decision = _one(WORLD, seed, 6000)
        covered += low is not None and high is not None and low <= truth <= high
        approved += decision is not None and decision > -POLICY.tolerance
    worse = WORLD.with_difference(-POLICY.tolerance)
    false = 0
    for seed in range(reps):
        *_, decision = _one(worse, 10_000 + seed, 6000)
        false += decision is not None and decision > -POLICY.tolerance
    return [
        Row(f"95% interval covers the true difference (+{truth:.4f})", covered, reps),
        Row("truly better challenger approved", approved, reps),
        Row("challenger worse by the tolerance approved (one look)", false, reps),
    ]


def repeated_looks(reps: int, looks: int) -> list[Row]:
    """A worse-by-the-tolerance challenger, analysed after each day's traffic."""
    worse = WORLD.with_difference(-POLICY.tolerance)
    plain = corrected = 0
    for seed in range(reps):
        rows, sampling = worse.draw(
            np.random.default_rng(20_000 + seed), PER_LOOK * looks, delay_days=1.0
        )
        passed_plain = passed_corrected = False
        for look in range(1, looks + 1):
            part = rows.take(np.arange(PER_LOOK * look))
            options = Options(as_of=AS_OF, seed=seed * 100 + look, looks=look)
            evidence = compare(
                part, sampling, version="v2", production_version="v1", options=options
            ).evidence
            ci = evidence.difference_ci
            passed_plain |= ci is not None and ci.low > -POLICY.tolerance
            passed_corrected |= (
                evidence.decision_low is not None and evidence.decision_low > -POLICY.tolerance
            )
        plain += passed_plain
        corrected += passed_corrected
    return [
        Row(f"approved at any of {looks} looks, plain 97.5% bound each time", plain, reps),
        Row(f"approved at any of {looks} looks, looks-corrected bound", corrected, reps),
    ]


def scale() -> str:
    rows, sampling = WORLD.draw(np.random.default_rng(1), 1_000_000, delay_days=1.0)
    started = time.perf_counter()
    evidence = compare(
        rows, sampling, version="v2", production_version="v1", options=Options(as_of=AS_OF)
    ).evidence
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return (
        f"One analysis of 1,000,000 compared transactions ({evidence.matured_frauds} frauds, "
        f"{evidence.details.get('observed_would_be_blocks', 0):.0f} blocks): {seconds:.1f} s "
        f"(pairing excluded), peak memory of the process {peak:.0f} MB."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=400)
    parser.add_argument("--looks", type=int, default=10)
    parser.add_argument("--look-reps", type=int, default=200)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    started = time.time()
    rows = single_look(args.reps) + repeated_looks(args.look_reps, args.looks)
    lines = [
        "# Evidence statistics: a simulation study",
        "",
        "Generated by `make evidence-study` (`benchmarks/evidence_study.py`): seeded repetitions",
        "of simulated traffic whose true values are known in closed form",
        "(`tests/retrain/evidence/simulation.py`), analysed by the real code. About 480 frauds",
        f"per single-look repetition; {PER_LOOK} transactions (about 96 frauds) more at each",
        f"look. Approval means the decision bound is above -{POLICY.tolerance} (the tolerance).",
        "",
        "| what | count | repetitions | share |",
        "|---|---|---|---|",
        *(f"| {r.what} | {r.count} | {r.reps} | {r.share:.1%} |" for r in rows),
        "",
        scale(),
        "",
        f"Total time {time.time() - started:.0f} s on this machine ({_machine()}).",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "evidence-study.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def _machine() -> str:
    try:
        model = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        model = "unknown CPU"
    import os

    return f"{os.cpu_count()} cores, {model}"


if __name__ == "__main__":
    main()
