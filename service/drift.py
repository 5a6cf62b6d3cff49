"""Drift of production against its own first hour: the gauges the drift alerts read.

For the version in production, :class:`Drift` keeps its counts over its first ``reference_s``
in this process (the reference: the distribution it showed when it was new) and over the last
``window_s`` (recent), and exports, once each holds ``min_scored`` transactions:

* ``shadowline_production_block_rate{version, period="reference"|"recent"}``
* ``shadowline_production_score_psi{version}``: PSI of the recent score histogram against the
  reference one.

A new production version (or a restart) starts a new reference, so the gauges are absent for
the first ``reference_s``.  Prometheus alone could not do this: "the first hour of the version
now in production" is not a window PromQL can express.
"""

from __future__ import annotations

import contextlib
from collections import deque

from service.metrics import ServiceMetrics
from service.signals import Counts, Reading, psi

# How many readings the recent window keeps at most (one every window_s / RING readings).
RING = 120


class Drift:
    """Updated by :class:`service.watch.Watch` with every reading (see the module docstring)."""

    def __init__(
        self, metrics: ServiceMetrics, *, reference_s: float, window_s: float, min_scored: int
    ) -> None:
        self._metrics = metrics
        self._reference_s = reference_s
        self._window_s = window_s
        self._min_scored = min_scored
        self._version: str | None = None
        self._since = 0.0
        self._start = Counts()
        self.reference: Counts | None = None
        self._ring: deque[tuple[float, Counts]] = deque()

    def update(self, version: str | None, reading: Reading, now: float) -> None:
        """Take ``reading`` (taken at ``now``) for the production ``version``."""
        if version != self._version:
            self._version, self._since, self.reference = version, now, None
            self._start = reading.of(version) if version else Counts()
            self._ring.clear()
            self._metrics.production_block_rate.clear()
            self._metrics.production_psi.clear()
        if version is None:
            return
        counts = reading.of(version)
        if not self._ring or now - self._ring[-1][0] >= self._window_s / RING:
            self._ring.append((now, counts))
        # Keep one reading at or before the window's start: it is the recent window's base.
        while len(self._ring) > 1 and self._ring[1][0] <= now - self._window_s:
            self._ring.popleft()
        if self.reference is None and now - self._since >= self._reference_s:
            self.reference = counts - self._start
        reference = self.reference
        if reference is None or reference.scored < self._min_scored:
            return
        self._metrics.production_block_rate.labels(version, "reference").set(reference.block_rate)
        recent = counts - self._ring[0][1]
        if recent.scored < self._min_scored:  # too little traffic lately: say nothing
            with contextlib.suppress(KeyError):
                self._metrics.production_block_rate.remove(version, "recent")
            with contextlib.suppress(KeyError):
                self._metrics.production_psi.remove(version)
            return
        self._metrics.production_block_rate.labels(version, "recent").set(recent.block_rate)
        self._metrics.production_psi.labels(version).set(psi(reference.scores, recent.scores))
