"""Reading the scores topic back in tests (consumer settings from INFRA.md)."""

from __future__ import annotations

import time
from collections.abc import Callable

from kafka import KafkaConsumer

from registry.records import ScoreRecord, decode_score


def read_records(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[ScoreRecord]], bool],
    timeout_s: float = 20.0,
) -> list[ScoreRecord]:
    """Read ``topic`` from the start until ``until(records)`` holds or the timeout passes."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_poll_interval_ms=5000,
    )
    records: list[ScoreRecord] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(records):
            for batch in consumer.poll(timeout_ms=200).values():
                records.extend(decode_score(message.value) for message in batch)
    finally:
        consumer.close()
    return records
