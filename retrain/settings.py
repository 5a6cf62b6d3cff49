"""Settings of the retrain worker (``shadowline retrain run | worker``).

Importing this module must stay cheap: it is read by the CLI and by tests that never train.
"""

from __future__ import annotations

from pydantic import Field

from registry.config import SharedSettings


class RetrainSettings(SharedSettings):
    """Everything the retrain worker reads at start-up; built once and passed down."""

    model_name: str = Field(default="fraud", min_length=1, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    schedule: str = Field(default="0 3 * * 1", min_length=9)  # cron: Mondays 03:00 UTC
    runs_dir: str = Field(default=".shadowline/runs", min_length=1)
    data_source: str = Field(default="synthetic", min_length=1)  # "synthetic" or a folder path
    shadow_rate: float = Field(default=1.0, gt=0, le=1)
    health_ttl_s: int = Field(default=120, ge=5)
    metrics_port: int = Field(default=9101, ge=0, le=65535)
