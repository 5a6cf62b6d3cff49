"""The columns the evidence is computed from: one row per transaction both models scored.

Every source of evidence builds the same :class:`Paired` columns for one challenger, and the
statistics (:mod:`retrain.evidence.signals`, :mod:`retrain.evidence.intervals`, ...) never see
where they came from:

* :func:`pair_records` streams decoded Kafka records (``shadowline analyze`` reading the
  topics; tests build records by hand);
* the archive reader builds the same columns from day-partitioned Parquet with DuckDB.

A transaction is paired when the challenger scored it without error and production was the
version compared against; if it was recorded twice, the newest record wins.  Labels are joined
on the transaction id: one label per transaction, the latest ``label_time`` (a chargeback
reversed by a later review).  ``Sampling`` keeps what the challenger did on every transaction
it was sampled on (errors by kind), for the label-free signals.

Decisions are small integers (:data:`ALLOW`, :data:`REVIEW`, :data:`BLOCK`); a missing label is
:data:`NO_LABEL`; a missing amount or time is NaN.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from registry.evidence import DecisionName
from registry.records import LabelRecord, ScoreRecord

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int8]
Bools = npt.NDArray[np.bool_]

ALLOW, REVIEW, BLOCK = 0, 1, 2
DECISIONS: tuple[DecisionName, DecisionName, DecisionName] = ("allow", "review", "block")
DECISION_CODE = {name: code for code, name in enumerate(DECISIONS)}
NO_LABEL, LEGIT, FRAUD = -1, 0, 1
# How a shadow entry's ``error`` starts, by kind (service/shadow.py writes them).
ERROR_KINDS = ("timeout", "busy", "shed", "input", "load", "error")


def error_kind(message: str) -> str:
    """The kind of a shadow error message (``timeout: no result within 50 ms`` -> timeout)."""
    head = message.split(":", 1)[0].strip()
    return head if head in ERROR_KINDS else "error"


@dataclass(frozen=True)
class Paired:
    """Aligned columns, one row per paired transaction (see the module docstring).

    ``production_decision`` is the model's own decision (``block`` for an explored
    transaction, which was answered ``review``); ``exploration_share`` the probability a
    would-be block had of being explored when it was scored.  ``label`` is
    :data:`FRAUD`, :data:`LEGIT` or :data:`NO_LABEL` with its ``label_time`` (NaN without).
    """

    transaction_id: tuple[str, ...]
    scored_at: Floats
    production_score: Floats
    production_decision: Ints
    explored: Bools
    exploration_share: Floats
    challenger_score: Floats
    challenger_decision: Ints
    amount: Floats
    production_latency_ms: Floats
    challenger_latency_ms: Floats
    label: Ints
    label_time: Floats

    def __len__(self) -> int:
        return len(self.transaction_id)

    def take(self, index: npt.NDArray[np.intp] | Bools) -> Paired:
        """The rows selected by an index array or a boolean mask, in that order."""
        ids = np.asarray(self.transaction_id, dtype=object)[index]
        return Paired(
            transaction_id=tuple(ids.tolist()),
            scored_at=self.scored_at[index],
            production_score=self.production_score[index],
            production_decision=self.production_decision[index],
            explored=self.explored[index],
            exploration_share=self.exploration_share[index],
            challenger_score=self.challenger_score[index],
            challenger_decision=self.challenger_decision[index],
            amount=self.amount[index],
            production_latency_ms=self.production_latency_ms[index],
            challenger_latency_ms=self.challenger_latency_ms[index],
            label=self.label[index],
            label_time=self.label_time[index],
        )


@dataclass
class Sampling:
    """What happened on every transaction the challenger was sampled on, and what was left out.

    ``errors`` counts the challenger's failed entries by kind (:data:`ERROR_KINDS`);
    ``other_production`` the transactions answered by another production version;
    ``duplicates`` repeated records of one transaction; ``scores_read``/``labels_read`` what
    was read in all.  ``fraud_delays`` holds ``(scored_at, label_time)`` of every fraud label
    on any scored transaction (not only the challenger's): the label-delay curve's data.
    """

    sampled: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    other_production: int = 0
    other_model: int = 0
    duplicates: int = 0
    scores_read: int = 0
    labels_read: int = 0
    labels_superseded: int = 0
    labels_without_score: int = 0
    labels_before_score: list[str] = field(default_factory=list)
    labels_after: list[str] = field(default_factory=list)  # dated after the analysis time
    fraud_delays: list[tuple[float, float]] = field(default_factory=list)


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


@dataclass
class _Row:
    scored_at: float
    production_version: str
    production_score: float
    production_decision: int
    explored: bool
    exploration_share: float
    production_latency_ms: float
    challenger_score: float | None
    challenger_decision: int
    challenger_latency_ms: float
    error: str | None
    amount: float


def _amount(record: ScoreRecord, amount_field: str | None) -> float:
    if amount_field is None:
        return float("nan")
    value = record.inputs.get(amount_field)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return float("nan")
    return float(value)


def _row(record: ScoreRecord, version: str, amount_field: str | None) -> _Row | None:
    shadow = next((s for s in record.shadows if s.version == version), None)
    if shadow is None:
        return None
    failed = shadow.error is not None or shadow.score is None or shadow.decision is None
    production = record.production
    return _Row(
        scored_at=record.scored_at,
        production_version=production.version,
        production_score=production.score,
        production_decision=DECISION_CODE[production.decision.value],
        explored=production.explored,
        exploration_share=production.exploration_share,
        production_latency_ms=production.latency_ms,
        challenger_score=None if failed else shadow.score,
        challenger_decision=-1
        if failed or shadow.decision is None
        else (DECISION_CODE[shadow.decision.value]),
        challenger_latency_ms=float("nan") if shadow.latency_ms is None else shadow.latency_ms,
        error=(shadow.error or "error: no score") if failed else None,
        amount=_amount(record, amount_field),
    )


def pair_records(
    scores: Iterable[ScoreRecord],
    labels: Iterable[LabelRecord],
    version: str,
    *,
    production_version: str | None = None,
    model_name: str | None = None,
    amount_field: str | None = None,
    as_of: float | None = None,
) -> tuple[Paired, Sampling, str | None]:
    """Pair challenger ``version`` with production over decoded records.

    ``labels`` is read fully first, then ``scores`` is streamed (only the challenger's rows
    and the labeled transactions' score times are kept).  ``production_version`` fixes the
    version compared against (default: the one that answered the newest record the challenger
    scored).  Labels dated after ``as_of`` are not used (``Sampling.labels_after`` names
    them).  Returns the paired columns, the sampling counts and the production version used.
    """
    paired = pair_many(
        scores,
        labels,
        [version],
        production_version=production_version,
        model_name=model_name,
        amount_field=amount_field,
        as_of=as_of,
    )
    return paired[version]


def pair_many(
    scores: Iterable[ScoreRecord],
    labels: Iterable[LabelRecord],
    versions: Sequence[str],
    *,
    production_version: str | None = None,
    model_name: str | None = None,
    amount_field: str | None = None,
    as_of: float | None = None,
) -> dict[str, tuple[Paired, Sampling, str | None]]:
    """:func:`pair_records` for several shadow versions in one pass over ``scores`` (a
    challenger and its control).  Without ``production_version``, each version is compared
    with the production that answered the newest record it scored."""
    later: list[str] = []

    def until_as_of(stream: Iterable[LabelRecord]) -> Iterator[LabelRecord]:
        for label in stream:
            if as_of is not None and label.label_time > as_of:
                later.append(label.transaction_id)
            else:
                yield label

    label_of, superseded = latest_labels(until_as_of(labels))
    rows: dict[str, dict[str, _Row]] = {version: {} for version in versions}
    scored_at: dict[str, float] = {}
    counts = Sampling(
        labels_read=len(label_of) + superseded + len(later),
        labels_superseded=superseded,
        labels_after=later,
    )
    duplicates = dict.fromkeys(versions, 0)
    for record in scores:
        counts.scores_read += 1
        if model_name is not None and record.model_name != model_name:
            counts.other_model += 1
            continue
        tx = record.transaction_id
        if tx in label_of:
            scored_at[tx] = max(scored_at.get(tx, record.scored_at), record.scored_at)
        for version in versions:
            row = _row(record, version, amount_field)
            if row is None:
                continue
            known = rows[version].get(tx)
            if known is not None:
                duplicates[version] += 1
                if row.scored_at < known.scored_at:
                    continue
            rows[version][tx] = row
    _label_counts(label_of, scored_at, counts)
    return {
        version: _finish(rows[version], label_of, counts, duplicates[version], production_version)
        for version in versions
    }


def _finish(
    rows: dict[str, _Row],
    label_of: dict[str, LabelRecord],
    counts: Sampling,
    duplicates: int,
    production_version: str | None,
) -> tuple[Paired, Sampling, str | None]:
    sampling = replace(counts, errors=Counter(), duplicates=duplicates, sampled=len(rows))
    for row in rows.values():
        if row.error is not None:
            sampling.errors[error_kind(row.error)] += 1
    scored = {tx: r for tx, r in rows.items() if r.challenger_score is not None}
    if production_version is None and scored:
        production_version = max(scored.values(), key=lambda r: r.scored_at).production_version
    kept = {tx: r for tx, r in scored.items() if r.production_version == production_version}
    sampling.other_production = len(scored) - len(kept)
    return _columns(kept, label_of, sampling), sampling, production_version


def _label_counts(
    label_of: dict[str, LabelRecord], scored_at: dict[str, float], sampling: Sampling
) -> None:
    for tx, label in label_of.items():
        at = scored_at.get(tx)
        if at is None:
            sampling.labels_without_score += 1
        elif label.label_time < at:
            sampling.labels_before_score.append(tx)
        elif label.is_fraud:
            sampling.fraud_delays.append((at, label.label_time))


def _columns(rows: dict[str, _Row], label_of: dict[str, LabelRecord], sampling: Sampling) -> Paired:
    ids = tuple(sorted(rows))
    ordered = [rows[tx] for tx in ids]
    refused = set(sampling.labels_before_score)
    labels = [None if tx in refused else label_of.get(tx) for tx in ids]

    def floats(values: Iterable[float]) -> Floats:
        return np.fromiter(values, dtype=np.float64, count=len(ids))

    return Paired(
        transaction_id=ids,
        scored_at=floats(r.scored_at for r in ordered),
        production_score=floats(r.production_score for r in ordered),
        production_decision=np.array([r.production_decision for r in ordered], dtype=np.int8),
        explored=np.array([r.explored for r in ordered], dtype=np.bool_),
        exploration_share=floats(r.exploration_share for r in ordered),
        challenger_score=floats(float(r.challenger_score or 0.0) for r in ordered),
        challenger_decision=np.array([r.challenger_decision for r in ordered], dtype=np.int8),
        amount=floats(r.amount for r in ordered),
        production_latency_ms=floats(r.production_latency_ms for r in ordered),
        challenger_latency_ms=floats(r.challenger_latency_ms for r in ordered),
        label=np.array([NO_LABEL if x is None else int(x.is_fraud) for x in labels], dtype=np.int8),
        label_time=floats(float("nan") if x is None else x.label_time for x in labels),
    )
