"""What a challenger must show before a human may approve it.

Shadow analysis (``retrain``) measures a shadow version against production on live traffic and
records the result as :class:`ShadowEvidence` (``ModelRegistry.record_evidence``).  ``approve``
then checks it against the :class:`ApprovalPolicy`; breaking a rule is refused with the rule's
name and the numbers, unless the approver forces it with a written reason (kept in the audit).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class ShadowEvidence(BaseModel):
    """The result of comparing one shadow version with production on the same live traffic.

    ``metric`` is the business metric the policy judges (e.g. fraud caught at production's
    block rate); ``production_value`` is None when there was no production model to compare to.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    production_version: str | None
    shadow_records: Annotated[int, Field(ge=0)]  # requests the challenger scored in shadow
    labeled_records: Annotated[int, Field(ge=0)] = 0  # of those, how many have a label yet
    metric: Annotated[str, Field(min_length=1)] = "fraud_caught_at_block_rate"
    challenger_value: float
    production_value: float | None = None
    higher_is_better: bool = True
    window_start: datetime | None = None
    window_end: datetime | None = None
    report: str = ""  # where the full report lives (path or URL)
    details: dict[str, float] = Field(default_factory=dict)
    recorded_at: datetime | None = None  # filled by the registry when recorded

    @property
    def ref(self) -> str:
        """A short, content-derived reference for audit entries: ``evidence:<sha256[:16]>``."""
        digest = hashlib.sha256(self.model_dump_json().encode()).hexdigest()
        return f"evidence:{digest[:16]}"

    @property
    def regression(self) -> float | None:
        """How much worse than production the challenger is (negative = better)."""
        if self.production_value is None:
            return None
        delta = self.production_value - self.challenger_value
        return delta if self.higher_is_better else -delta


class ApprovalPolicy(BaseModel):
    """The rules ``approve`` enforces.  Defaults suit a fraud team's weekly cadence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_shadow_records: Annotated[int, Field(ge=0)] = 1000
    min_labeled_records: Annotated[int, Field(ge=0)] = 0
    max_regression: Annotated[float, Field(ge=0.0)] = 0.01

    def violations(self, evidence: ShadowEvidence | None, production: str | None) -> list[str]:
        """Each broken rule as ``rule <name>: <numbers>`` (empty when approval may proceed).

        ``production`` is the version in production now; evidence measured against another
        version is stale.
        """
        if evidence is None:
            return [
                "rule evidence_required: no shadow evidence is recorded for it "
                "(run shadow analysis, or force with a written reason)"
            ]
        broken: list[str] = []
        if production is not None and evidence.production_version != production:
            broken.append(
                f"rule evidence_current: the evidence compares against production "
                f"{evidence.production_version}, but production is now {production}"
            )
        if evidence.shadow_records < self.min_shadow_records:
            broken.append(
                f"rule min_shadow_records: {evidence.shadow_records} shadow records, "
                f"{self.min_shadow_records} required"
            )
        if evidence.labeled_records < self.min_labeled_records:
            broken.append(
                f"rule min_labeled_records: {evidence.labeled_records} labeled records, "
                f"{self.min_labeled_records} required"
            )
        regression = evidence.regression
        if regression is not None and regression > self.max_regression:
            broken.append(
                f"rule max_regression: {evidence.metric} is {evidence.challenger_value:.4f} "
                f"against production's {evidence.production_value:.4f}, a regression of "
                f"{regression:.4f} > {self.max_regression:.4f} allowed"
            )
        return broken
