"""Reading topics back in tests (consumer settings from INFRA.md), and a listener that records
what the producer reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from kafka import KafkaConsumer

from registry.records import ScoreRecord, decode_score

T = TypeVar("T")


def read_topic(
    bootstrap: str,
    topic: str,
    decode: Callable[[Any], T],
    *,
    until: Callable[[list[T]], bool],
    timeout_s: float = 20.0,
) -> list[T]:
    """Read ``topic`` from the start, each message (a kafka-python ``ConsumerRecord``)
    decoded, until ``until(values)`` holds or the timeout passes."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_poll_interval_ms=5000,
    )
    values: list[T] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(values):
            for batch in consumer.poll(timeout_ms=200).values():
                values.extend(decode(message) for message in batch)
    finally:
        consumer.close()
    return values


def read_records(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[ScoreRecord]], bool],
    timeout_s: float = 20.0,
) -> list[ScoreRecord]:
    """Read the scores ``topic`` from the start until ``until(records)`` holds or the timeout
    passes."""
    return read_topic(
        bootstrap,
        topic,
        lambda message: decode_score(message.value),
        until=until,
        timeout_s=timeout_s,
    )


def read_raw(
    bootstrap: str,
    topic: str,
    *,
    until: Callable[[list[tuple[bytes, bytes]]], bool],
    timeout_s: float = 20.0,
) -> list[tuple[bytes, bytes]]:
    """(key, value) of every message of ``topic`` from the start, in the order of a single
    partition's log, until ``until(messages)`` holds or the timeout passes."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        max_poll_interval_ms=5000,
    )
    messages: list[tuple[bytes, bytes]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not until(messages):
            for batch in consumer.poll(timeout_ms=200).values():
                messages.extend((m.key, m.value) for m in batch)
    finally:
        consumer.close()
    return messages


class Deliveries:
    """A :class:`service.producer.DeliveryListener` that keeps every tag it is told of."""

    def __init__(self) -> None:
        self.acked: list[Hashable] = []
        self.failed: list[tuple[Hashable, str]] = []
        self._lock = threading.Lock()

    def on_acked(self, tag: Hashable) -> None:
        with self._lock:
            self.acked.append(tag)

    def on_failed(self, tag: Hashable, error: BaseException) -> None:
        with self._lock:
            self.failed.append((tag, type(error).__name__))
