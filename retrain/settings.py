"""Settings of the retrain worker (``shadowline retrain run | worker``).

Importing this module must stay cheap: it is read by the CLI and by tests that never train.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import Field, field_validator, model_validator

from registry.config import SharedSettings
from retrain.evidence.settings import EvidenceSettings

# The metrics the gate can judge: each has a paired interval (retrain/gates.py).
GateMetric = Literal["recall", "money_saved_share", "precision", "roc_auc"]


AS_OF_RANGE = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))


def check_as_of(value: datetime) -> datetime:
    """``value`` as an aware UTC time (a bare one means UTC); ValueError outside AS_OF_RANGE.

    The data sources work in nanosecond timestamps, which end in 2262, and the synthetic
    generator's calendar starts in 2000: a time outside the range is a typo, said so plainly.
    """
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value
    low, high = AS_OF_RANGE
    if not low <= aware < high:
        raise ValueError(
            f"as-of time {aware.isoformat()} is outside the supported range "
            f"{low.date()} .. {high.date()}"
        )
    return aware


class RetrainSettings(EvidenceSettings):
    """Everything the retrain worker reads at start-up; built once and passed down."""

    model_name: str = Field(default="fraud", min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    schedule: str = Field(default="0 3 * * 1", min_length=9)  # cron: Mondays 03:00 UTC
    runs_dir: str = Field(default=".shadowline/runs", min_length=1)
    # "synthetic", "archive" (the topic archive at archive_dir: train on what production saw)
    # or a folder path.
    data_source: str = Field(default="synthetic", min_length=1)
    shadow_rate: float = Field(default=1.0, gt=0, le=1)
    health_ttl_s: int = Field(default=120, ge=5)
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    keep_runs: int = Field(default=20, ge=1)  # run folders kept on disk (they copy the data)
    # The worker analyses every shadow on this cron (daily, 05:00 UTC) and records the
    # evidence as `shadowline analyze --record` does (retrain/scheduled_analysis.py), allowing
    # `analysis_timeout_s` to read each topic.
    analysis_schedule: str = Field(default="0 5 * * *", min_length=9)
    analysis_timeout_s: float = Field(default=120.0, ge=1.0)

    # Time: a run trains on data known at `as_of` (None = the time the run starts).  Rows
    # younger than `label_maturity_days` are left out: their chargebacks may not have come yet.
    as_of: datetime | None = None
    train_weeks: int = Field(default=8, ge=1, le=104)
    eval_weeks: int = Field(default=2, ge=1, le=26)
    label_maturity_days: int = Field(default=21, ge=0, le=180)

    # The synthetic source (data_source="synthetic").
    synthetic_seed: int = Field(default=7, ge=0)
    synthetic_rows_per_week: int = Field(default=25_000, ge=500, le=2_000_000)

    # Training (LightGBM unless another trainer is plugged in).
    trainer: Literal["lightgbm"] = "lightgbm"
    n_trees: int = Field(default=150, ge=1, le=5000)
    num_leaves: int = Field(default=31, ge=2, le=1024)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    training_seed: int = Field(default=1, ge=0)

    # Decision thresholds: block the riskiest `block_rate` of the evaluation set (production's
    # block rate when there is a production model), review the next band up to `review_rate`.
    block_rate: float = Field(default=0.005, gt=0, lt=1)
    review_rate: float = Field(default=0.02, gt=0, lt=1)

    # Gates (retrain/gates.py): a candidate is rejected only when it is confidently worse than
    # production by more than `gate_tolerance` (absolute) on `gate_metric`, overall or in a
    # slice with enough rows and frauds to be judged: the upper bound of the paired difference
    # (candidate minus production) is below -gate_tolerance.  The bound is one-sided at
    # `gate_alpha` / 2 divided by the number of scopes judged (Bonferroni), from a paired
    # bootstrap of `gate_replicates` replicates.
    gate_metric: GateMetric = "recall"
    gate_tolerance: float = Field(default=0.02, ge=0, le=1)
    gate_min_slice_rows: int = Field(default=500, ge=1)
    gate_min_slice_frauds: int = Field(default=20, ge=1)
    gate_alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    gate_replicates: int = Field(default=1000, ge=100, le=100_000)

    # Roll-out (retrain/rollout.py): the worker promotes the newest approval whose audit entry
    # is newer than production's, inside the deployment window (a cron expression over
    # minutes, e.g. "* 9-15 * * 1-5" = weekdays 09:00-15:59 UTC; empty = at once).
    rollout: bool = True
    rollout_window: str = ""
    rollout_forced: bool = False  # also roll out approvals forced past the approval policy
    rollout_interval_s: float = Field(default=10.0, ge=0.1, le=3600)

    @model_validator(mode="after")
    def _review_band_contains_block_band(self) -> RetrainSettings:
        if self.review_rate < self.block_rate:
            raise ValueError(
                f"SHADOWLINE_REVIEW_RATE ({self.review_rate:g}) must be >= SHADOWLINE_BLOCK_RATE "
                f"({self.block_rate:g}): reviewed payments include blocked ones"
            )
        return self

    @field_validator("as_of")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else check_as_of(value)

    @field_validator("schedule", "analysis_schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from croniter import croniter  # only when a schedule is given

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (e.g. '0 3 * * 1')")
        return value

    @field_validator("rollout_window")
    @classmethod
    def _valid_window(cls, value: str) -> str:
        if not value:
            return value
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(
                f"{value!r} is not a cron expression over minutes "
                "(e.g. '* 9-15 * * 1-5' for weekdays 09:00-15:59 UTC; empty: any time)"
            )
        return value


class ArchiveSettings(SharedSettings):
    """Settings of the topic archiver (``shadowline archive``); built once and passed down.

    The consumer-group timings default to values that let a member join a group in seconds
    (a Kafka-protocol broker took 23 s with the client defaults); ``max_poll_interval_ms`` must
    exceed the time one flush takes (about 1 s per 50,000 records here).
    """

    archive_group: str = Field(default="shadowline-archiver", min_length=1)
    # A batch is written when it holds this many records or its oldest is this old: fewer,
    # larger files (engines read big files faster); analysis reads the unarchived tail anyway.
    archive_flush_records: int = Field(default=100_000, ge=1, le=2_000_000)
    archive_flush_interval_s: float = Field(default=900.0, gt=0)
    archive_metrics_port: int = Field(default=9102, ge=0, le=65535)
    # /healthz on the metrics port fails (503) when the loop has not polled the broker for this
    # long: Kubernetes then restarts a stuck archiver.  Longer than a flush can take, and than
    # archive_max_poll_interval_ms, after which the group has already moved its partitions.
    archive_stall_s: float = Field(default=180.0, gt=0)
    archive_progress_s: float = Field(default=10.0, gt=0)
    archive_session_timeout_ms: int = Field(default=6000, ge=1000)
    archive_heartbeat_interval_ms: int = Field(default=1000, ge=100)
    archive_max_poll_interval_ms: int = Field(default=60_000, ge=1000)
