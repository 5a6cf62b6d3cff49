"""The pipeline's machinery: named steps, a run folder, fingerprints, resume.

Each step reads its upstream steps' outputs from the run folder and writes its own into
``<run folder>/<step>/`` plus ``done.json``:

* ``fingerprint`` -- sha256 of the step's name, its parameters and the *output* fingerprints
  of its upstream steps: it changes exactly when the step would compute something different;
* ``outputs`` -- sha256 of every file the step wrote, and their combined ``output`` hash.

Running a step whose ``done.json`` has the same fingerprint and whose files still hash the
same is skipped ("reused"); that is how a run resumes after a crash and how one step can be
re-run alone.  Steps are plain functions of a :class:`Context`, registered in :data:`STEPS`
by :mod:`retrain.steps`.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from retrain.constants import STEPS as STEP_ORDER
from retrain.errors import StepError

if TYPE_CHECKING:
    from retrain.registration import ModelStore
    from retrain.settings import RetrainSettings
    from retrain.sources import DataSource
    from retrain.training import Trainer

DONE = "done.json"
Status = Literal["ran", "reused"]


def sha256_json(value: object) -> str:
    """Hash of a JSON-able value (keys sorted, so dict order does not matter)."""
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RunFolder:
    """``<runs_dir>/<run_id>/``: one sub-folder per step."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def step_dir(self, step: str) -> Path:
        return self.root / step

    def path(self, step: str, name: str) -> Path:
        """A file of ``step``'s output.  Raises StepError when the step has not run."""
        if self.done(step) is None:
            raise StepError(f"step '{step}' has not run in {self.root}; run it first")
        return self.step_dir(step) / name

    def done(self, step: str) -> dict[str, Any] | None:
        marker = self.step_dir(step) / DONE
        if not marker.is_file():
            return None
        data: dict[str, Any] = json.loads(marker.read_text())
        return data

    def intact(self, record: dict[str, Any]) -> bool:
        """The files a step recorded are all there, unchanged."""
        directory = self.step_dir(record["step"])
        for name, digest in record["outputs"].items():
            path = directory / name
            if not path.is_file() or sha256_file(path) != digest:
                return False
        return True

    def summary(self, step: str) -> dict[str, Any]:
        record = self.done(step)
        if record is None:
            raise StepError(f"step '{step}' has not run in {self.root}; run it first")
        summary: dict[str, Any] = record["summary"]
        return summary


@dataclass
class Context:
    """Everything a step may use.  Built once per run; steps never read settings from env."""

    settings: RetrainSettings
    run_id: str
    as_of: datetime
    folder: RunFolder
    source: DataSource
    trainer: Trainer
    store: ModelStore | None
    code_version: str
    cache: dict[str, Any] = field(default_factory=dict)  # in-memory hand-over between steps
    control_of: str | None = None  # a control run: the production version it retrains


StepFunction = Callable[[Context, Path], dict[str, Any]]
ParamsFunction = Callable[[Context], dict[str, Any]]


@dataclass(frozen=True)
class Step:
    """A named step: its upstream steps, its parameters, and the function doing the work.

    ``run(ctx, out_dir)`` writes files into ``out_dir`` and returns a JSON-able summary.
    """

    name: str
    upstream: tuple[str, ...]
    params: ParamsFunction
    run: StepFunction


@dataclass(frozen=True)
class StepReport:
    """What happened to one step in this run."""

    name: str
    status: Status
    fingerprint: str
    seconds: float
    summary: dict[str, Any]


STEPS: dict[str, Step] = {}


def step(
    name: str, upstream: tuple[str, ...], params: ParamsFunction
) -> Callable[[StepFunction], StepFunction]:
    """Decorator registering a step function under ``name`` (one of constants.STEPS)."""
    if name not in STEP_ORDER:
        raise StepError(f"unknown step '{name}'")

    def register(function: StepFunction) -> StepFunction:
        STEPS[name] = Step(name=name, upstream=upstream, params=params, run=function)
        return function

    return register


def fingerprint(ctx: Context, item: Step) -> str:
    """The fingerprint ``item`` would have now.  Raises StepError if upstream has not run."""
    upstream = {}
    for name in item.upstream:
        record = ctx.folder.done(name)
        if record is None:
            raise StepError(f"step '{item.name}' needs the output of '{name}'; run it first")
        upstream[name] = record["output"]
    return sha256_json({"step": item.name, "params": item.params(ctx), "upstream": upstream})


def execute(ctx: Context, name: str, *, force: bool = False) -> StepReport:
    """Run step ``name`` unless its done.json matches (then it is reused).

    Raises StepError for an unknown step or a missing upstream output; whatever the step
    itself raises propagates (the run records it as the failure reason).
    """
    if name not in STEPS:
        known = ", ".join(STEP_ORDER)
        raise StepError(f"unknown step '{name}' (steps: {known})")
    item = STEPS[name]
    expected = fingerprint(ctx, item)
    record = ctx.folder.done(name)
    if not force and record and record["fingerprint"] == expected and ctx.folder.intact(record):
        return StepReport(
            name=name, status="reused", fingerprint=expected, seconds=0.0, summary=record["summary"]
        )
    out_dir = ctx.folder.step_dir(name)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / DONE).unlink(missing_ok=True)
    started = time.perf_counter()
    summary = item.run(ctx, out_dir)
    seconds = time.perf_counter() - started
    outputs = {
        path.name: sha256_file(path)
        for path in sorted(out_dir.iterdir())
        if path.is_file() and path.name != DONE
    }
    output = summary.pop("_output_fingerprint", None) or sha256_json(outputs)
    # JSON round trip: a fresh summary looks exactly like one read back from done.json.
    summary = json.loads(json.dumps(summary, default=str))
    marker = {
        "step": name,
        "fingerprint": expected,
        "outputs": outputs,
        "output": output,
        "summary": summary,
        "seconds": round(seconds, 4),
    }
    (out_dir / DONE).write_text(json.dumps(marker, indent=2, sort_keys=True, default=str))
    return StepReport(
        name=name, status="ran", fingerprint=expected, seconds=seconds, summary=summary
    )


def prune_runs(runs_dir: Path, keep: int, current: str) -> list[str]:
    """Delete all but the newest ``keep`` run folders (never ``current``); returns the ids.

    Only folders with a ``run.json`` are runs.  The current run is the newest by definition;
    the others are ordered by their run id's start time, then by when ``run.json`` was written
    (two runs can start within the same second, and the id's random suffix must not decide).
    """
    if not runs_dir.is_dir():
        return []
    others = sorted(
        (p for p in runs_dir.iterdir() if (p / "run.json").is_file() and p.name != current),
        key=lambda p: (p.name.split("-", 1)[0], (p / "run.json").stat().st_mtime_ns),
    )
    doomed = others[: max(len(others) - (keep - 1), 0)]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return [p.name for p in doomed]


def plan(until: str | None = None) -> Iterator[str]:
    """Step names in order, up to and including ``until``."""
    if until is not None and until not in STEP_ORDER:
        raise StepError(f"unknown step '{until}' (steps: {', '.join(STEP_ORDER)})")
    for name in STEP_ORDER:
        yield name
        if name == until:
            return
