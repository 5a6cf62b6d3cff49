"""Shadow evidence as the registry stores it: what a promotion decision rests on.

Shadow analysis (``retrain.evidence``) compares one challenger with production on the same
transactions and records a :class:`ShadowEvidence` on the challenger
(``ModelRegistry.record_evidence``); ``approve`` judges it with the
:class:`~registry.policy.ApprovalPolicy`.  The models here are plain data with no statistics
of their own, so the registry, the scorer's review page and the CLI all read the same thing.

What one evidence holds:

* where it comes from (``source``: ``live`` shadow records or a ``replay`` of archived
  traffic) and against which production version;
* :class:`LabelFree` signals, measured from the first shadow record (agreement, flips with
  money, rank correlation, PSI, KS, the challenger's error rates and latency);
* :class:`Maturity`: how complete the labels are (the label-delay curve, the maturity window,
  the expected share of eventual labels already in);
* one :class:`MetricEstimate` per labeled metric, on the matured cohort: each model's value
  and the paired difference, each with a 95% interval, and the frauds behind it;
* the ``primary`` metric the policy judges, with ``decision_low``: the lower bound of the
  difference at the level corrected for ``looks`` (how many times evidence was recorded);
* optionally a :class:`ControlComparison`: a control shadow (production's recipe retrained
  with another seed) measured the same way, the noise floor a difference must clear.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Source = Literal["live", "replay"]
Estimator = Literal["ipw", "observed"]
DecisionName = Literal["allow", "review", "block"]
PRIMARY_METRIC = "fraud_caught_at_block_rate"

Count = Annotated[int, Field(ge=0)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Interval(_Frozen):
    """A confidence interval ``[low, high]`` at ``level`` (0.95: a 95% interval)."""

    low: float
    high: float
    level: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.95

    def __str__(self) -> str:
        return f"[{self.low:+.4f}, {self.high:+.4f}]"


class MetricEstimate(_Frozen):
    """One labeled metric for both models on the same matured transactions.

    ``difference`` is challenger minus production (positive: the challenger is better when
    ``higher_is_better``).  Values are None when undefined on these transactions (e.g.
    precision when a model blocks nothing); ``frauds`` counts the labeled frauds observed
    behind the estimate (not weighted), ``transactions`` the matured transactions.
    """

    name: str
    challenger: float | None
    production: float | None
    difference: float | None
    challenger_ci: Interval | None = None
    production_ci: Interval | None = None
    difference_ci: Interval | None = None
    higher_is_better: bool = True
    frauds: Count = 0
    transactions: Count = 0


class Flip(_Frozen):
    """Transactions production decided ``production`` that the challenger decides
    ``challenger`` (each at its own thresholds), and the money they carry (None: no amount)."""

    production: DecisionName
    challenger: DecisionName
    count: Count
    amount: float | None = None


class Quantiles(_Frozen):
    """Latency quantiles, in milliseconds."""

    p50: float
    p95: float
    p99: float


class LabelFree(_Frozen):
    """Signals that need no label, over the transactions both models scored.

    ``transactions`` is how many transactions these numbers rest on; ``sampled`` how many the
    challenger was sampled on (the rates are shares of ``sampled``).
    """

    transactions: Count
    sampled: Count
    agreement: Share | None = None
    flips: tuple[Flip, ...] = ()
    rank_correlation: float | None = None
    psi: float | None = None
    ks: float | None = None
    error_rate: Share = 0.0
    timeout_rate: Share = 0.0
    busy_rate: Share = 0.0
    shed_rate: Share = 0.0
    challenger_latency_ms: Quantiles | None = None
    production_latency_ms: Quantiles | None = None


class Maturity(_Frozen):
    """How far the labels have come in.

    ``window_s`` is the maturity window: a transaction scored at least that long ago counts
    as matured.  ``window_from`` says where it came from (``curve``: the delay by which
    ``quantile`` of the labels arrived, estimated from the labels seen; ``setting``: given).
    ``expected_share_all`` is the expected share of eventual labels already in over every
    compared transaction, ``expected_share_matured`` over the matured ones.  ``curve`` holds
    points ``(delay seconds, share of eventual labels in by then)``; ``delays_seen`` counts
    the fraud labels it was estimated from.
    """

    window_s: Annotated[float, Field(ge=0.0)]
    window_from: Literal["curve", "setting"]
    quantile: Share = 0.9
    expected_share_all: Share | None = None
    expected_share_matured: Share | None = None
    delays_seen: Count = 0
    curve: tuple[tuple[float, float], ...] = ()


class ControlComparison(_Frozen):
    """The control shadow against production, and the challenger against the control.

    ``control_difference`` is the control's paired difference with production on the primary
    metric (what retraining alone produces); ``versus_control`` is the challenger minus the
    control on the transactions both scored.  ``beyond_noise`` is True when that interval
    excludes 0 in the challenger's favour; ``verdict`` says it in words.
    """

    version: str
    control_difference: float | None
    control_difference_ci: Interval | None = None
    versus_control: float | None = None
    versus_control_ci: Interval | None = None
    transactions: Count = 0
    frauds: Count = 0
    beyond_noise: bool = False
    verdict: str = ""


class ShadowEvidence(_Frozen):
    """The result of comparing one challenger with production on the same transactions.

    The top-level numbers are the ones the approval policy judges; everything else is there
    so that a reader can see what they rest on.  ``challenger_value``, ``production_value`` and
    ``difference`` are the primary metric's; ``difference_ci`` its 95% interval;
    ``decision_low`` the lower bound at the looks-corrected level (see
    :mod:`retrain.evidence.intervals`).  Before any transaction is matured and labeled the
    evidence holds the label-free signals only (``challenger_value`` None, ``why_undefined``
    says why).  Evidence recorded before intervals existed has none of them; the policy then
    asks for a new analysis.
    """

    schema_version: Literal[1, 2] = 2
    source: Source = "live"
    production_version: str | None
    shadow_records: Count  # transactions both models scored (the challenger without error)
    labeled_records: Count = 0  # of the matured ones, how many have a known outcome
    matured_records: Count = 0
    matured_frauds: Count = 0  # labeled frauds among the matured, observed transactions
    explored_records: Count = 0  # would-be blocks explored (answered review) among them
    estimator: Estimator = "observed"
    metric: Annotated[str, Field(min_length=1)] = PRIMARY_METRIC
    challenger_value: float | None = None  # None: no labeled metric yet (label-free only)
    production_value: float | None = None
    higher_is_better: bool = True
    difference: float | None = None
    difference_ci: Interval | None = None
    decision_low: float | None = None
    decision_level: Annotated[float, Field(gt=0.0, lt=1.0)] | None = None
    looks: Annotated[int, Field(ge=1)] = 1
    metrics: tuple[MetricEstimate, ...] = ()
    label_free: LabelFree | None = None
    maturity: Maturity | None = None
    control: ControlComparison | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    why_undefined: str = ""  # why there is no labeled metric (yet)
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
        if self.production_value is None or self.challenger_value is None:
            return None
        delta = self.production_value - self.challenger_value
        return delta if self.higher_is_better else -delta

    def summary(self) -> str:
        """One line: the source, what it rests on, the primary metric and its interval."""
        line = (
            f"{self.source}: {self.shadow_records} compared, {self.matured_frauds} matured frauds; "
        )
        if self.challenger_value is None:
            return line + f"no labeled metric yet ({self.why_undefined or 'undefined'})"
        line += f"{self.metric} {self.challenger_value:.4f}"
        if self.production_value is not None:
            line += f" vs production {self.production_version} {self.production_value:.4f}"
        if self.difference_ci is not None:
            line += f", difference 95% {self.difference_ci}"
        return line

    def metric_named(self, name: str) -> MetricEstimate | None:
        """The labeled metric called ``name``, if measured."""
        return next((m for m in self.metrics if m.name == name), None)
