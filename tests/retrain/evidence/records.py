"""Score and label records built by hand, as the scorer and the label feed would write them."""

from __future__ import annotations

from collections.abc import Sequence

from kafka import KafkaProducer

from registry.manifest import Decision
from registry.records import LabelRecord, ProductionScore, ScoreRecord, ShadowScore

T0 = 1_795_000_000.0  # 2026-11-18 unix seconds: the first record of a test window


def decide(score: float) -> Decision:
    """The thresholds every test model uses: block >= 0.9, review >= 0.6."""
    if score >= 0.9:
        return Decision.BLOCK
    return Decision.REVIEW if score >= 0.6 else Decision.ALLOW


def shadow(version: str, score: float | None, error: str | None = None) -> ShadowScore:
    if score is None:
        return ShadowScore(version=version, score=None, decision=None, latency_ms=None, error=error)
    return ShadowScore(version=version, score=score, decision=decide(score), latency_ms=0.4)


def scored(
    tx: str,
    production: float,
    *shadows: ShadowScore,
    at: float = T0,
    production_version: str = "v1",
    model_name: str = "fraud",
) -> ScoreRecord:
    return ScoreRecord(
        transaction_id=tx,
        request_id=f"r-{tx}",
        scored_at=at,
        model_name=model_name,
        production=ProductionScore(
            version=production_version,
            score=production,
            decision=decide(production),
            latency_ms=0.2,
        ),
        shadows=list(shadows),
        inputs={"amount": 12.5, "country": "DE"},
    )


def label(
    tx: str, is_fraud: bool, at: float = T0 + 86_400.0, source: str = "chargeback"
) -> LabelRecord:
    return LabelRecord(transaction_id=tx, is_fraud=is_fraud, label_time=at, source=source)


def traffic(n: int, challengers: dict[str, int]) -> tuple[list[ScoreRecord], list[LabelRecord]]:
    """``n`` transactions, one second apart, all labeled two days later; every 20th is fraud.

    Production (v1) blocks half the fraud (every 40th transaction) and one legitimate payment
    in 100.  Challenger ``version: quarters`` blocks ``quarters`` of every 4 consecutive frauds
    (0.97) and the same legitimate payments; the rest score low, without ties with 0.97.
    """
    scores: list[ScoreRecord] = []
    labels: list[LabelRecord] = []
    for i in range(n):
        tx = f"tx-{i:05d}"
        fraud = i % 20 == 0
        false_decline = i % 100 == 7
        prod = 0.95 if (fraud and i % 40 == 0) or false_decline else 0.1 + (i % 7) / 100
        shadows = [
            shadow(
                version,
                0.97 if (fraud and (i // 20) % 4 < catch) or false_decline else 0.2 + (i % 5) / 100,
            )
            for version, catch in challengers.items()
        ]
        scores.append(scored(tx, prod, *shadows, at=T0 + i))
        labels.append(label(tx, fraud, at=T0 + 2 * 86_400.0 + i))
    return scores, labels


def produce(bootstrap: str, topic: str, values: Sequence[tuple[str, bytes | None]]) -> None:
    """Send ``(key, value)`` pairs in order and wait for every acknowledgement."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=50)
    try:
        futures = [producer.send(topic, key=k.encode(), value=v) for k, v in values]
        producer.flush(timeout=20)
        for future in futures:
            future.get(timeout=20)
    finally:
        producer.close()
