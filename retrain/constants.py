"""Redis keys, step names and fixed numbers of the retrain package."""

from __future__ import annotations

from typing import Final

KEY_PREFIX: Final = "shadowline:retrain"
RUNS_INDEX: Final = f"{KEY_PREFIX}:runs"  # sorted set: run id -> start time (unix s)
HEALTH_KEY: Final = f"{KEY_PREFIX}:health"  # JSON, with a TTL; read by `worker --check`
LOCK_KEY: Final = f"{KEY_PREFIX}:lock"  # one run at a time per Redis database
SCHEDULE_KEY: Final = f"{KEY_PREFIX}:schedule:last"  # last cron slot handled (unix s)
ANALYSIS_KEY: Final = f"{KEY_PREFIX}:analysis:last"  # last analysis slot handled (unix s)
RUN_TTL_S: Final = 90 * 24 * 3600  # run records are kept for a quarter
MAX_RUNS_KEPT: Final = 500


def run_key(run_id: str) -> str:
    """Redis key of one run's record (a JSON string)."""
    return f"{KEY_PREFIX}:run:{run_id}"


def last_model_key(model_name: str) -> str:
    """Redis key holding the identity (fingerprints) of the last run that registered a model."""
    return f"{KEY_PREFIX}:last:{model_name}"


# The pipeline's steps, in order.  Each writes into <run folder>/<step>/.
STEPS: Final = (
    "ingest",
    "filter",
    "features",
    "sets",
    "train",
    "export",
    "parity",
    "evaluate",
    "gates",
    "report",
    "register",
    "shadow",
)

PARITY_TOLERANCE: Final = 1e-4
GOLDEN_EXAMPLES: Final = 12
