"""Settings of the evidence analysis (``shadowline analyze``; the retrain worker inherits them).

Cheap to import: every ``shadowline`` command reads it.
"""

from __future__ import annotations

from pydantic import Field

from registry.config import SharedSettings

DAY = 86_400.0


class EvidenceSettings(SharedSettings):
    """How shadow evidence is computed and where its reports go."""

    # A transaction is matured once older than the delay by which this share of fraud labels
    # has arrived (estimated from the labels seen) ...
    evidence_maturity_quantile: float = Field(default=0.9, gt=0.0, lt=1.0)
    # ... unless a fixed window is given (seconds) ...
    evidence_maturity_window_s: float | None = Field(default=None, ge=0.0)
    # ... or too few fraud labels have been seen to trust the curve: then this window.
    evidence_default_window_s: float = Field(default=30 * DAY, ge=0.0)
    evidence_min_delays: int = Field(default=20, ge=1)
    evidence_replicates: int = Field(default=1000, ge=100, le=100_000)
    # Labels dated later than now plus this allowance (clock skew) are refused.
    evidence_clock_skew_s: float = Field(default=300.0, ge=0.0)
    evidence_dir: str = Field(default=".shadowline/evidence", min_length=1)
