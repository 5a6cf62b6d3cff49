"""Helpers shared by the retrain tests (imported by test modules, never by conftest)."""

from __future__ import annotations

from datetime import UTC, datetime


class SimulatedClock:
    """One simulated time for every part of a test: the worker reads it as unix seconds
    (``clock()``), the registry as an aware datetime (``clock.utc``)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def utc(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)
