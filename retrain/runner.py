"""One retrain run from start to finish: steps, run record, lock, metrics, outcome.

Outcomes (the ``outcome`` label of ``shadowline_retrain_runs_total``):

* ``succeeded`` -- the candidate passed the gates and is in shadow;
* ``rejected`` -- the candidate was registered and rejected by a gate (reason recorded);
* ``skipped`` -- nothing to do: the data, settings, code and production model are identical
  to the run that registered the last candidate, or another run holds the lock;
* ``failed`` -- a step raised; the reason is one line naming what broke.
"""

from __future__ import annotations

import json
import subprocess
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import redis

from registry.errors import RegistryError
from retrain import publish, steps
from retrain.control import control_settings, plan_control
from retrain.errors import ControlError, RetrainError
from retrain.metrics import RetrainMetrics
from retrain.pipeline import (
    Context,
    RunFolder,
    StepReport,
    execute,
    plan,
    prune_runs,
    sha256_json,
)
from retrain.records import RunRecord, RunStore
from retrain.registration import ModelStore
from retrain.settings import RetrainSettings, check_as_of
from retrain.sources import DataSource, source_from_settings
from retrain.training import LightGBMTrainer, Trainer

STEP_MODULES = (steps, publish)  # importing them registers every step with the pipeline
Progress = Callable[[str, str, float], None]  # step, "start" | "ran" | "reused" | "failed", s
EXIT_CODES = {"succeeded": 0, "skipped": 0, "rejected": 3, "failed": 1}
LOCK_TTL_S = 3600
RUN_FILE = "run.json"
# Settings that change how a run computes; the others (ports, TTLs) do not.
_RUNTIME_ONLY = {
    "redis_url",
    "metrics_port",
    "health_ttl_s",
    "schedule",
    "analysis_schedule",
    "analysis_timeout_s",
    "runs_dir",
    "environment",
    "kafka_bootstrap",
    "scores_topic",
    "labels_topic",
    "artifact_dir",
    "archive_dir",
    "as_of",
    # Where artifacts live and how Kafka is reached change no result either.
    "artifact_backend",
    "artifact_s3_bucket",
    "artifact_s3_prefix",
    "artifact_s3_endpoint_url",
    "artifact_s3_region",
    "kafka_security_protocol",
    "kafka_sasl_mechanism",
    "kafka_sasl_username",
    "kafka_sasl_password",
    "kafka_ssl_cafile",
    "kafka_ssl_certfile",
    "kafka_ssl_keyfile",
    "rollout",
    "rollout_window",
    "rollout_forced",
    "rollout_interval_s",
}


@dataclass(frozen=True)
class RunResult:
    run_id: str
    outcome: str
    reason: str
    model_version: str | None
    steps: tuple[StepReport, ...]
    folder: Path

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]


def code_version() -> str:
    """``git describe`` of the checkout the code runs from, else the package version."""
    here = Path(__file__).resolve().parent
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--tags"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        described = ""
    return f"git:{described}" if described else f"shadowline {metadata.version('shadowline')}"


def new_run_id(now: datetime) -> str:
    return f"r{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def trainer_from_settings(settings: RetrainSettings) -> Trainer:
    return LightGBMTrainer(
        n_trees=settings.n_trees,
        num_leaves=settings.num_leaves,
        learning_rate=settings.learning_rate,
        seed=settings.training_seed,
    )


class Runner:
    """Runs the pipeline for one model name; records every run in Redis."""

    def __init__(
        self,
        settings: RetrainSettings,
        *,
        client: redis.Redis,
        store: ModelStore | None,
        metrics: RetrainMetrics,
        clock: Callable[[], float] = time.time,
        source: DataSource | None = None,
        trainer: Trainer | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.settings = settings
        self.runs = RunStore(client)
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.source = source or source_from_settings(
            settings.data_source,
            settings.synthetic_seed,
            settings.synthetic_rows_per_week,
            archive_dir=settings.archive_dir,
            model_name=settings.model_name,
        )
        self.trainer = trainer or trainer_from_settings(settings)
        self.progress = progress or (lambda step, status, seconds: None)

    def run(
        self,
        *,
        as_of: datetime | None = None,
        trigger: str = "manual",
        resume: str | None = None,
        until: str | None = None,
        control: bool = False,
        seed: int | None = None,
    ) -> RunResult:
        """Run (or resume) the pipeline up to ``until`` (default: all steps).

        ``control``: retrain production's recipe with another ``seed`` instead (see
        :mod:`retrain.control`); it takes its as-of time from the recipe.  Raises
        :class:`~retrain.errors.ControlError` when no control can be built.
        """
        now = datetime.fromtimestamp(self.clock(), tz=UTC)
        if control and (as_of is not None or resume is not None):
            raise ControlError(
                "a control run takes its as-of time from production's recipe: "
                "--as-of and --resume do not apply (resume a control run by its id alone)"
            )
        if as_of is not None:
            try:
                as_of = check_as_of(as_of)  # a bare date/time means UTC
            except ValueError as exc:
                raise RetrainError(str(exc)) from None
        if resume is not None:
            ctx = self.context(resume)
        elif control:
            ctx = self._control_context(new_run_id(now), seed)
        else:
            ctx = self._new_context(new_run_id(now), as_of or self.settings.as_of or now)
        root, run_id, as_of = ctx.folder.root, ctx.run_id, ctx.as_of
        record = RunRecord(
            run_id=run_id,
            model_name=self.settings.model_name,
            started_at=self.clock(),
            as_of=as_of.isoformat(),
            trigger=trigger,
            folder=str(root),
        )
        holder = self.runs.acquire(run_id, LOCK_TTL_S)
        if holder is not None:
            return self._finish(ctx, record, [], "skipped", f"run {holder} is in progress")
        self.metrics.running.set(1)
        try:
            first = resume is None and until is None and ctx.control_of is None
            return self._steps(ctx, record, check_identical=first, until=until)
        finally:
            self.metrics.running.set(0)
            self.runs.release(run_id)

    def context(self, run_id: str) -> Context:
        """The context of an existing run (its as-of time is read from its folder)."""
        root = Path(self.settings.runs_dir) / run_id
        meta = root / RUN_FILE
        if not meta.is_file():
            raise RetrainError(f"no run {run_id} in {self.settings.runs_dir} (no {meta})")
        stored = json.loads(meta.read_text())
        as_of = datetime.fromisoformat(stored["as_of"])
        return self._context(run_id, as_of, root, stored.get("control"))

    def _new_context(
        self, run_id: str, as_of: datetime, control: dict[str, Any] | None = None
    ) -> Context:
        root = Path(self.settings.runs_dir) / run_id
        root.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {"run_id": run_id, "as_of": as_of.isoformat()}
        if control is not None:
            meta["control"] = control  # a resumed control run keeps its recipe and seed
        (root / RUN_FILE).write_text(json.dumps(meta))
        return self._context(run_id, as_of, root, control)

    def _control_context(self, run_id: str, seed: int | None) -> Context:
        production = self.store.production(self.settings.model_name) if self.store else None
        if production is None:
            raise ControlError(
                f"no production model for {self.settings.model_name}: a control retrains "
                "production's recipe"
            )
        plan, as_of = plan_control(self.settings, production.manifest, seed)
        return self._new_context(run_id, as_of, plan)

    def _context(
        self, run_id: str, as_of: datetime, root: Path, control: dict[str, Any] | None = None
    ) -> Context:
        settings, trainer, control_of = self.settings, self.trainer, None
        if control is not None:
            settings = control_settings(self.settings, control)
            trainer, control_of = trainer_from_settings(settings), str(control["control_of"])
        return Context(
            settings=settings,
            run_id=run_id,
            as_of=as_of,
            folder=RunFolder(root),
            source=self.source,
            trainer=trainer,
            store=self.store,
            code_version=code_version(),
            control_of=control_of,
        )

    def step(self, run_id: str, name: str) -> StepReport:
        """Re-run one step of an existing run (its upstream outputs must be there)."""
        return execute(self.context(run_id), name, force=True)

    def _steps(
        self, ctx: Context, record: RunRecord, *, check_identical: bool, until: str | None
    ) -> RunResult:
        reports: list[StepReport] = []
        ctx.folder.root.mkdir(parents=True, exist_ok=True)
        self.runs.save(record)
        for name in plan(until):
            self.progress(name, "start", 0.0)
            self.runs.extend(ctx.run_id, LOCK_TTL_S)
            started = time.perf_counter()
            try:
                report = execute(ctx, name)
            except Exception as exc:  # every failure becomes the run's reason
                seconds = time.perf_counter() - started
                self.metrics.step_seconds.labels(step=name).observe(seconds)
                self.progress(name, "failed", seconds)
                record.steps.append({"step": name, "status": "failed", "seconds": seconds})
                reason = _reason(name, exc)
                (ctx.folder.root / "error.log").write_text(traceback.format_exc())
                return self._finish(ctx, record, reports, "failed", reason)
            reports.append(report)
            self.metrics.step_seconds.labels(step=name).observe(report.seconds)
            self.progress(name, report.status, report.seconds)
            record.steps.append(
                {
                    "step": name,
                    "status": report.status,
                    "seconds": round(report.seconds, 4),
                    "summary": _short(report.summary),
                }
            )
            self.runs.save(record)
            if name == "ingest" and check_identical:
                same = self._identical(ctx)
                if same is not None:
                    return self._finish(ctx, record, reports, "skipped", same)
        if until is not None and until not in ("shadow",):
            return self._finish(ctx, record, reports, "succeeded", f"stopped after '{until}'")
        registered = ctx.folder.summary("register")
        outcome = "succeeded" if registered["gates_passed"] else "rejected"
        reason = (
            f"{registered['model']} in shadow at rate {self.settings.shadow_rate:g}"
            if outcome == "succeeded"
            else f"{registered['model']} rejected: {registered['reason']}"
        )
        if ctx.control_of is not None:
            seed = ctx.settings.training_seed
            reason += f" (control of {self.settings.model_name}:{ctx.control_of}, seed {seed})"
        else:  # a control is no candidate: the next scheduled run must not be skipped for it
            self.runs.set_last_model(
                self.settings.model_name,
                {"identity": self._identity(ctx), "run_id": ctx.run_id, "version": ctx.run_id},
            )
        record.model_version = ctx.run_id
        return self._finish(ctx, record, reports, outcome, reason)

    def _identity(self, ctx: Context) -> str:
        settings = {k: v for k, v in self.settings.model_dump().items() if k not in _RUNTIME_ONLY}
        production = self.store.production(self.settings.model_name) if self.store else None
        return sha256_json(
            {
                "data": ctx.folder.summary("ingest")["data_fingerprint"],
                "settings": settings,
                "code": ctx.code_version,
                "trainer": self.trainer.params,
                "production": production.manifest.version if production else None,
            }
        )

    def _identical(self, ctx: Context) -> str | None:
        """The skip reason when the last registered candidate came from identical inputs."""
        last = self.runs.last_model(self.settings.model_name)
        if last is None or last["identity"] != self._identity(ctx):
            return None
        if self.store is None or not self.store.has(self.settings.model_name, last["version"]):
            return None
        fingerprint = ctx.folder.summary("ingest")["data_fingerprint"]
        return (
            f"identical to run {last['run_id']}: same data (fingerprint {fingerprint[:12]}), "
            f"settings, code and production model; {self.settings.model_name}:"
            f"{last['version']} is already registered"
        )

    def _finish(
        self,
        ctx: Context,
        record: RunRecord,
        reports: list[StepReport],
        outcome: str,
        reason: str,
    ) -> RunResult:
        record.outcome, record.reason, record.finished_at = outcome, reason, self.clock()
        self.runs.save(record)
        # Run folders hold copies of the data: keep the newest few, never grow without bound.
        prune_runs(Path(self.settings.runs_dir), self.settings.keep_runs, ctx.run_id)
        self.metrics.runs.labels(outcome=outcome).inc()
        if outcome in ("succeeded", "rejected"):
            self.metrics.last_success.set(record.finished_at)
        return RunResult(
            run_id=ctx.run_id,
            outcome=outcome,
            reason=reason,
            model_version=record.model_version,
            steps=tuple(reports),
            folder=ctx.folder.root,
        )


def _reason(step: str, exc: Exception) -> str:
    """One line: the step and the error's own message."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, RetrainError | RegistryError):
        return f"step {step}: {message}"
    return f"step {step} crashed: {type(exc).__name__}: {message}"


def _short(summary: dict[str, Any]) -> dict[str, Any]:
    """The summary without bulky values, for the Redis record."""
    return {k: v for k, v in summary.items() if not isinstance(v, list | dict) or len(v) <= 12}
