"""A clock tests set by hand (unix seconds), for code that takes ``clock: Callable[[], float]``."""

from __future__ import annotations


class Clock:
    """Returns ``now`` until the test moves it."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
