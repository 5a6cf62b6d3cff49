"""Shadow analysis: score records + late fraud labels -> :class:`ShadowEvidence` for one challenger.

Pure logic (no Kafka, no Redis): :func:`analyze` takes iterables of decoded records, so it
streams the scores topic and keeps only what the challenger needs.

The comparison is made on the SAME transactions for both models:

* a transaction counts when the challenger scored it without error and production was the
  version being compared against (``production_version``; default: the one that answered the
  newest such record).  If the scores topic carries a transaction twice, the newest record wins;
* production's block rate is the share of those transactions production blocked; the
  challenger blocks the same number of them, its riskiest by score (transactions tied at the
  cut-off share what is left of that volume).  The volume is measured on all compared traffic,
  labeled or not: it is the customer friction the fraud team pays for;
* the business metric ``fraud_caught_at_block_rate`` is, for each model, the share of labeled
  fraud among those transactions that it blocks -- the rule the approval policy judges;
* a label counts once per transaction: the latest ``label_time`` wins (a chargeback reversed by
  a later review); labels of transactions that were never scored are counted and ignored.

When the metric cannot be measured (nothing compared, production blocked nothing, no labels
yet, fewer than ``MIN_BLOCKED_LABEL_COVERAGE`` of production's blocked transactions labeled,
no fraud among the labels), :meth:`ShadowComparison.evidence` raises :class:`NoEvidence`
saying which, so approval never rests on an empty or one-sided comparison.
"""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from registry.evidence import ShadowEvidence
from registry.manifest import Decision
from registry.records import LabelRecord, ScoreRecord
from retrain.errors import NoEvidence

METRIC = "fraud_caught_at_block_rate"
# The share of production's blocked transactions that must carry a label: blocked payments
# rarely get one (no chargeback), and without them production's catch reads as zero.
MIN_BLOCKED_LABEL_COVERAGE = 0.1
Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class _Scored:
    """What one compared transaction contributes (the newest record of it)."""

    scored_at: float
    production_version: str
    production_score: float
    production_decision: str
    score: float | None  # None: the challenger errored on it
    decision: str | None


@dataclass(frozen=True)
class ShadowComparison:
    """Challenger vs production on the same transactions; see the module docstring.

    ``challenger_value`` / ``production_value`` are None when the metric is undefined
    (``why_undefined`` says why).  ``details`` holds every other number (counts, AUC,
    precision and recall at each model's own decision thresholds, thresholds, rates).
    """

    model_name: str | None
    version: str
    production_version: str | None
    shadow_records: int
    labeled_records: int
    labeled_frauds: int
    challenger_value: float | None
    production_value: float | None
    window_start: datetime | None
    window_end: datetime | None
    details: dict[str, float] = field(default_factory=dict)
    why_undefined: str = ""

    @property
    def ref(self) -> str:
        return f"{self.model_name}:{self.version}" if self.model_name else self.version

    def evidence(self, report: str = "") -> ShadowEvidence:
        """The comparison as the registry stores it; :class:`NoEvidence` when undefined."""
        if self.challenger_value is None:
            raise NoEvidence(self.ref, self.why_undefined)
        return ShadowEvidence(
            production_version=self.production_version,
            shadow_records=self.shadow_records,
            labeled_records=self.labeled_records,
            metric=METRIC,
            challenger_value=self.challenger_value,
            production_value=self.production_value,
            higher_is_better=True,
            window_start=self.window_start,
            window_end=self.window_end,
            report=report,
            details=self.details,
        )


def latest_labels(labels: Iterable[LabelRecord]) -> tuple[dict[str, LabelRecord], int]:
    """One label per transaction (latest ``label_time``; on a tie the later in the stream),
    and how many labels were superseded."""
    latest: dict[str, LabelRecord] = {}
    superseded = 0
    for label in labels:
        known = latest.get(label.transaction_id)
        if known is not None:
            superseded += 1
            if label.label_time < known.label_time:
                continue
        latest[label.transaction_id] = label
    return latest, superseded


def _collect(
    scores: Iterable[ScoreRecord],
    version: str,
    model_name: str | None,
    counts: dict[str, float],
    labeled_ids: Container[str],
) -> tuple[dict[str, _Scored], set[str]]:
    """The newest record per transaction the challenger was sampled on, and the labeled ids
    that were scored (not every scored id: that would be all traffic)."""
    mine: dict[str, _Scored] = {}
    scored_ids: set[str] = set()
    for record in scores:
        counts["scores_read"] += 1
        if model_name is not None and record.model_name != model_name:
            counts["other_model_records"] += 1
            continue
        if record.transaction_id in labeled_ids:
            scored_ids.add(record.transaction_id)
        shadow = next((s for s in record.shadows if s.version == version), None)
        if shadow is None:
            continue
        failed = shadow.error is not None or shadow.score is None
        entry = _Scored(
            scored_at=record.scored_at,
            production_version=record.production.version,
            production_score=record.production.score,
            production_decision=record.production.decision.value,
            score=None if failed else shadow.score,
            decision=None if failed or shadow.decision is None else shadow.decision.value,
        )
        known = mine.get(record.transaction_id)
        if known is not None:
            counts["duplicate_score_records"] += 1
            if record.scored_at < known.scored_at:
                continue
        mine[record.transaction_id] = entry
    return mine, scored_ids


def _pick_production(rows: dict[str, _Scored], production_version: str | None) -> str | None:
    if production_version is not None or not rows:
        return production_version
    return max(rows.values(), key=lambda row: row.scored_at).production_version


def auc(labels: Bools, scores: Floats) -> float | None:
    """ROC-AUC by ranks (ties count half); None unless both classes are present."""
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    # Average rank of each distinct score: tied scores share the mean of their positions.
    starts = np.cumsum(counts) - counts
    ranks = (starts + (counts + 1) / 2.0)[inverse]
    rank_sum = float(ranks[labels].sum())
    return (rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives)


def block_share(scores: Floats, blocked: int) -> Floats:
    """How much each row is blocked when exactly ``blocked`` of the riskiest rows are: 1 above
    the cut-off score, 0 below, and for rows tied at it the share of the remaining volume
    (the expected outcome of breaking the tie at random, so no tie inflates the volume)."""
    if blocked <= 0:
        return np.zeros(len(scores))
    blocked = min(blocked, len(scores))
    cutoff = np.partition(scores, len(scores) - blocked)[len(scores) - blocked]
    above, tied = scores > cutoff, scores == cutoff
    share = np.where(above, 1.0, 0.0)
    share[tied] = (blocked - int(above.sum())) / int(tied.sum())
    return share


def _rates(fraud: Bools, blocked: Floats, prefix: str, out: dict[str, float]) -> None:
    """Recall, precision and false-decline rate on the labeled rows; ``blocked`` in [0, 1]."""
    frauds, legit = int(fraud.sum()), int((~fraud).sum())
    caught, volume = float(blocked[fraud].sum()), float(blocked.sum())
    if frauds:
        out[f"{prefix}_recall"] = caught / frauds
    if volume > 0:
        out[f"{prefix}_precision"] = caught / volume
    if legit:
        out[f"{prefix}_false_decline_rate"] = float(blocked[~fraud].sum()) / legit


def analyze(
    scores: Iterable[ScoreRecord],
    labels: Iterable[LabelRecord],
    version: str,
    *,
    production_version: str | None = None,
    model_name: str | None = None,
) -> ShadowComparison:
    """Compare shadow ``version`` with production on the transactions both scored.

    ``labels`` is read fully first (one label per transaction is kept), then ``scores`` is
    streamed.  ``model_name`` keeps only records of that model; ``production_version`` fixes
    the production version compared against (the one the approval will be judged against).
    """
    counts: dict[str, float] = dict.fromkeys(
        ("scores_read", "other_model_records", "duplicate_score_records"), 0.0
    )
    label_of, counts["labels_superseded"] = latest_labels(labels)
    sampled, scored_ids = _collect(scores, version, model_name, counts, label_of)
    counts["labels_read"] = len(label_of) + counts["labels_superseded"]
    counts["labels_without_score"] = float(sum(1 for tx in label_of if tx not in scored_ids))
    counts["challenger_sampled"] = float(len(sampled))
    succeeded = {tx: row for tx, row in sampled.items() if row.score is not None}
    counts["shadow_errors"] = float(len(sampled) - len(succeeded))
    production = _pick_production(succeeded, production_version)
    rows = {tx: r for tx, r in succeeded.items() if r.production_version == production}
    counts["other_production_records"] = float(len(succeeded) - len(rows))
    why_empty = _why_empty(version, sampled, production)
    return _compare(model_name, version, production, rows, label_of, counts, why_empty)


def _why_empty(version: str, sampled: dict[str, _Scored], production: str | None) -> str:
    if not sampled:
        return f"{version} was never scored in shadow in the records read"
    if all(row.score is None for row in sampled.values()):
        return f"{version} failed on every one of the {len(sampled)} transactions it was sampled on"
    versions = sorted({row.production_version for row in sampled.values()})
    return (
        f"none of the transactions {version} scored was answered by production {production} "
        f"(they were answered by {', '.join(versions)})"
    )


def _compare(
    model_name: str | None,
    version: str,
    production: str | None,
    rows: dict[str, _Scored],
    label_of: dict[str, LabelRecord],
    counts: dict[str, float],
    why_empty: str,
) -> ShadowComparison:
    ids = sorted(rows)
    times = [rows[tx].scored_at for tx in ids]
    window = (
        (datetime.fromtimestamp(min(times), UTC), datetime.fromtimestamp(max(times), UTC))
        if times
        else (None, None)
    )
    labeled = np.array([tx in label_of for tx in ids], dtype=bool)
    fraud = np.array([label_of[tx].is_fraud for tx in ids if tx in label_of], dtype=bool)
    details = dict(counts)
    details["labeled_frauds"] = float(fraud.sum())
    base = ShadowComparison(
        model_name=model_name,
        version=version,
        production_version=production,
        shadow_records=len(ids),
        labeled_records=int(labeled.sum()),
        labeled_frauds=int(fraud.sum()),
        challenger_value=None,
        production_value=None,
        window_start=window[0],
        window_end=window[1],
        details=details,
    )
    if not ids:
        return _undefined(base, why_empty)
    challenger = np.array([rows[tx].score for tx in ids], dtype=np.float64)
    prod_score = np.array([rows[tx].production_score for tx in ids], dtype=np.float64)
    prod_blocks = np.array(
        [rows[tx].production_decision == Decision.BLOCK for tx in ids], dtype=np.float64
    )
    # The challenger blocks as many transactions as production did: same customer friction.
    chal_blocks = block_share(challenger, int(prod_blocks.sum()))
    details["production_block_rate"] = float(prod_blocks.mean())
    if not prod_blocks.any():
        # 0 against 0 would let any challenger through the policy.
        return _undefined(
            base, f"production blocked none of the {len(ids)} compared transactions: there is "
            "no block volume to compare at",
        )  # fmt: skip
    details["challenger_block_threshold"] = float(challenger[chal_blocks > 0].min())
    if not labeled.any():
        return _undefined(base, f"none of the {len(ids)} compared transactions has a label yet")
    blocked = prod_blocks > 0
    coverage = float(labeled[blocked].mean())
    details["production_blocked_label_coverage"] = coverage
    if coverage < MIN_BLOCKED_LABEL_COVERAGE:
        # Blocked payments are rarely labeled (no chargeback comes): production would catch
        # no labeled fraud, and any challenger blocking the same volume would look better.
        return _undefined(
            base, f"only {coverage:.1%} of the {int(blocked.sum())} transactions production "
            f"blocked have a label (at least {MIN_BLOCKED_LABEL_COVERAGE:.0%} needed): label a "
            "sample of blocked transactions (e.g. from manual review) to compare",
        )  # fmt: skip
    _labeled_details(rows, ids, labeled, fraud, challenger, prod_score, details)
    _rates(fraud, prod_blocks[labeled], "production_at_block_rate", details)
    _rates(fraud, chal_blocks[labeled], "challenger_at_block_rate", details)
    if not fraud.any():
        return _undefined(
            base, f"none of the {int(labeled.sum())} labeled transactions is fraud (yet)"
        )
    return replace(
        base,
        challenger_value=details["challenger_at_block_rate_recall"],
        production_value=details["production_at_block_rate_recall"],
    )


def _labeled_details(
    rows: dict[str, _Scored],
    ids: list[str],
    labeled: Bools,
    fraud: Bools,
    challenger: Floats,
    prod_score: Floats,
    details: dict[str, float],
) -> None:
    """Ranking quality and each model's own decisions (block; review or block) on the labels."""
    for prefix, scores in (("challenger", challenger), ("production", prod_score)):
        value = auc(fraud, scores[labeled])
        if value is not None:
            details[f"{prefix}_roc_auc"] = value
    tagged = [tx for tx, has in zip(ids, labeled, strict=True) if has]
    for prefix, decisions in (
        ("challenger", [rows[tx].decision for tx in tagged]),
        ("production", [rows[tx].production_decision for tx in tagged]),
    ):
        block = np.array([d == Decision.BLOCK for d in decisions], dtype=np.float64)
        review = np.array(
            [d in (Decision.BLOCK, Decision.REVIEW) for d in decisions], dtype=np.float64
        )
        _rates(fraud, block, f"{prefix}_own_block", details)
        _rates(fraud, review, f"{prefix}_own_review", details)


def _undefined(base: ShadowComparison, why: str) -> ShadowComparison:
    return replace(base, why_undefined=why)
