"""What a challenger must show before a human may approve it.

Shadow analysis (``retrain.evidence``) measures a challenger against production and records a
:class:`~registry.evidence.ShadowEvidence` (``ModelRegistry.record_evidence``); ``approve``
checks the :class:`ApprovalPolicy`.  Breaking a rule is refused with the rule's name and the
numbers, unless the approver forces it with a written reason (kept in the audit).

The policy judges intervals, not point values:

* ``min_matured_frauds``: labeled frauds among matured transactions: without enough of them no
  interval is narrow enough to mean anything, so the policy refuses for lack of evidence;
* ``min_label_maturity``: the expected share of eventual labels already in on the matured
  cohort (labels trickle in for weeks; an early look sees the fast ones only);
* ``non_inferiority``: the lower bound of the paired difference (challenger minus production)
  on the primary metric must be above ``-tolerance``.  The bound is taken at the level
  corrected for the number of looks (``ShadowEvidence.decision_low``): every recorded
  analysis is a chance to approve on noise, so each look spends part of ``alpha``
  (Bonferroni; see ``retrain/evidence/intervals.py``);
* ``min_shadow_records`` and ``min_live_records``: how many transactions the comparison rests
  on, and how many of them must come from live shadow when the labeled evidence comes from a
  replay of archived traffic.

When a version has both live and replay evidence, the labeled rules judge the one with more
matured frauds; ``min_live_records`` always reads the live one.

A control (a version whose lineage names ``control_of``: production's recipe retrained with
another seed, shadowed to measure the noise floor) is never a candidate for production:
``not_a_control`` refuses it whatever its evidence, so no automatic rollout can promote it.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from registry.evidence import ShadowEvidence


class ApprovalPolicy(BaseModel):
    """The rules ``approve`` enforces.  Defaults suit a fraud team's weekly cadence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_shadow_records: Annotated[int, Field(ge=0)] = 1000
    min_live_records: Annotated[int, Field(ge=0)] = 0
    min_matured_frauds: Annotated[int, Field(ge=0)] = 50
    min_label_maturity: Annotated[float, Field(ge=0.0, le=1.0)] = 0.8
    # Non-inferiority margin on the primary metric (share of fraud caught at production's
    # block rate): the challenger may be at most this much worse, with confidence.
    tolerance: Annotated[float, Field(ge=0.0, le=1.0)] = 0.02
    # Two-sided error level of the reported intervals; the decision bound is one-sided at
    # alpha / 2, divided by the number of looks.
    alpha: Annotated[float, Field(gt=0.0, lt=0.5)] = 0.05

    def decisive(self, evidence: ShadowEvidence) -> bool:
        """Whether ``evidence`` could support an approval (enough matured frauds): such a
        look spends part of ``alpha``."""
        return evidence.matured_frauds >= self.min_matured_frauds

    def violations(
        self,
        evidence: ShadowEvidence | None,
        production: str | None,
        *,
        replay: ShadowEvidence | None = None,
        control_of: str | None = None,
    ) -> list[str]:
        """Each broken rule as ``rule <name>: <numbers>`` (empty when approval may proceed).

        ``evidence`` is the live evidence, ``replay`` the evidence from a replay of archived
        traffic; ``production`` is the version in production now (evidence measured against
        another version is stale); ``control_of`` the version's ``lineage.control_of``.
        """
        control = (
            [
                f"rule not_a_control: it is a control of {control_of} (production's recipe "
                "retrained with another seed, shadowed to measure the noise floor), not a "
                "candidate for production"
            ]
            if control_of is not None
            else []
        )
        if evidence is None and replay is None:
            return [
                *control,
                "rule evidence_required: no shadow evidence is recorded for it "
                "(run shadow analysis, or force with a written reason)",
            ]
        broken = control
        for item in (evidence, replay):
            if (
                item is not None
                and production is not None
                and item.production_version != production
            ):
                broken.append(
                    f"rule evidence_current: the {item.source} evidence compares against "
                    f"production {item.production_version}, but production is now {production}"
                )
        # The labeled rules judge the evidence with more matured frauds (live on a tie).
        judged = max(
            (item for item in (evidence, replay) if item is not None),
            key=lambda item: (item.matured_frauds, item.source == "live"),
        )
        live_records = evidence.shadow_records if evidence is not None else 0
        if live_records < self.min_live_records:
            broken.append(
                f"rule min_live_records: {live_records} transactions scored in live shadow, "
                f"{self.min_live_records} required"
            )
        if judged.shadow_records < self.min_shadow_records:
            broken.append(
                f"rule min_shadow_records: {judged.shadow_records} compared transactions, "
                f"{self.min_shadow_records} required"
            )
        if judged.production_version is not None:  # a first model has nothing to be worse than
            broken += self._labeled(judged)
        return broken

    def _labeled(self, judged: ShadowEvidence) -> list[str]:
        broken: list[str] = []
        if judged.matured_frauds < self.min_matured_frauds:
            broken.append(
                f"rule min_matured_frauds: {judged.matured_frauds} labeled frauds among matured "
                f"transactions, {self.min_matured_frauds} required (too few to tell the models "
                "apart: wait for labels or replay archived traffic)"
            )
        maturity = judged.maturity.expected_share_matured if judged.maturity else None
        if maturity is None or maturity < self.min_label_maturity:
            got = "unknown" if maturity is None else f"{maturity:.0%}"
            broken.append(
                f"rule min_label_maturity: {got} of eventual labels expected in on the matured "
                f"transactions, {self.min_label_maturity:.0%} required"
            )
        if judged.challenger_value is None:
            broken.append(
                "rule non_inferiority: no labeled comparison yet ("
                f"{judged.why_undefined or 'undefined'})"
            )
        elif judged.decision_low is None or judged.difference is None:
            broken.append(
                "rule non_inferiority: the evidence has no interval for the difference "
                "(recorded before intervals existed, or undefined): run the analysis again"
            )
        elif judged.decision_low <= -self.tolerance:
            level = judged.decision_level or 1 - self.alpha / 2
            broken.append(
                f"rule non_inferiority: {judged.metric} differs by {judged.difference:+.4f} "
                f"(challenger minus production); its lower bound at {level:.2%} "
                f"({judged.looks} look(s)) is {judged.decision_low:+.4f}, not above "
                f"-{self.tolerance:.4f}"
            )
        return broken
