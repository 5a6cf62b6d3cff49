"""A simulated payment stream whose truth is known: the ground for testing the statistics.

Each transaction has a latent risk ``x`` (standard normal, shifted by ``separation`` for a
fraud); production scores ``x`` plus noise of size ``production_noise``, the challenger ``x``
plus independent noise of size ``challenger_noise`` (less noise: a better model).  Production
blocks when its latent score passes ``threshold``; both models' own thresholds are that one.
The true population values follow from normal distributions in closed form
(:meth:`World.truth`): fraud caught by production, and by the challenger when it blocks the
same share of all traffic.

:meth:`World.draw` builds the :class:`~retrain.evidence.frame.Paired` columns the analysis
reads, with what a fraud team would observe: frauds get a label after a delay; legitimate
payments get none (the analysis treats a matured payment without a chargeback as
legitimate); a blocked payment's outcome is seen only when it was explored (answered review)
or when someone labelled it anyway (``label_blocked``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist

import numpy as np

from retrain.evidence.frame import ALLOW, BLOCK, FRAUD, LEGIT, NO_LABEL, REVIEW, Paired, Sampling

_N = NormalDist()
AS_OF = 1_800_000_000.0
DAY = 86_400.0


def _above(threshold: float, mean: float, sd: float) -> float:
    return 1.0 - _N.cdf((threshold - mean) / sd)


@dataclass(frozen=True)
class Truth:
    production: float  # fraud caught by production
    challenger: float  # fraud caught by the challenger at production's block rate
    block_rate: float

    @property
    def difference(self) -> float:
        return self.challenger - self.production


@dataclass(frozen=True)
class World:
    fraud_rate: float = 0.05
    separation: float = 2.5
    production_noise: float = 0.8
    challenger_noise: float = 0.6
    threshold: float = 2.0

    def _spread(self, noise: float) -> float:
        return math.sqrt(1.0 + noise**2)

    def _block_rate(self, cut: float, noise: float) -> float:
        sd = self._spread(noise)
        r = self.fraud_rate
        return r * _above(cut, self.separation, sd) + (1 - r) * _above(cut, 0.0, sd)

    def truth(self) -> Truth:
        rate = self._block_rate(self.threshold, self.production_noise)
        low, high = -20.0, 40.0  # the challenger's cut with the same block rate, by bisection
        for _ in range(200):
            middle = (low + high) / 2
            if self._block_rate(middle, self.challenger_noise) > rate:
                low = middle
            else:
                high = middle
        sd_c, sd_p = self._spread(self.challenger_noise), self._spread(self.production_noise)
        return Truth(
            production=_above(self.threshold, self.separation, sd_p),
            challenger=_above((low + high) / 2, self.separation, sd_c),
            block_rate=rate,
        )

    def with_difference(self, target: float) -> World:
        """This world with the challenger's noise tuned so the true difference is ``target``."""
        low, high = 0.01, 10.0  # more noise, smaller difference
        for _ in range(100):
            middle = (low + high) / 2
            if replace(self, challenger_noise=middle).truth().difference > target:
                low = middle
            else:
                high = middle
        return replace(self, challenger_noise=(low + high) / 2)

    def draw(
        self,
        rng: np.random.Generator,
        n: int,
        *,
        exploration: float = 0.0,
        label_blocked: float = 1.0,
        age_days: tuple[float, float] = (60.0, 90.0),
        delay_days: float = 10.0,
    ) -> tuple[Paired, Sampling]:
        """``n`` transactions scored ``age_days`` before :data:`AS_OF`, with fraud labels
        ``delay_days`` (median, log-normal) after the score when observed and already in."""
        fraud = rng.random(n) < self.fraud_rate
        x = rng.normal(size=n) + self.separation * fraud
        production = x + self.production_noise * rng.normal(size=n)
        challenger = x + self.challenger_noise * rng.normal(size=n)
        blocks = production >= self.threshold
        explored = blocks & (rng.random(n) < exploration)
        hidden = blocks & ~explored
        seen = ~hidden | (rng.random(n) < label_blocked)
        scored_at = AS_OF - rng.uniform(*age_days, size=n) * DAY
        delay = np.exp(rng.normal(math.log(delay_days), 1.0, size=n)) * DAY
        arrived = scored_at + delay <= AS_OF
        labeled = fraud & seen & arrived
        # A reviewed block carries an explicit label either way (the reviewer's verdict).
        verdict = hidden & seen & ~fraud
        label = np.where(labeled, FRAUD, np.where(verdict, LEGIT, NO_LABEL)).astype(np.int8)
        label_time = np.where(
            labeled, scored_at + delay, np.where(verdict, scored_at + DAY, np.nan)
        )
        rows = Paired(
            transaction_id=tuple(f"tx-{i}" for i in range(n)),
            scored_at=scored_at,
            production_score=_probability(production),
            production_decision=_decide(production, self.threshold),
            explored=explored,
            exploration_share=np.full(n, exploration),
            challenger_score=_probability(challenger),
            challenger_decision=_decide(challenger, self.threshold),
            amount=np.exp(rng.normal(3.5, 1.0, size=n)).round(2),
            production_latency_ms=np.full(n, 0.2),
            challenger_latency_ms=np.full(n, 0.3),
            label=label,
            label_time=label_time,
        )
        delays = [
            (float(s), float(t))
            for s, t, f in zip(scored_at, label_time, labeled, strict=True)
            if f
        ]
        return rows, Sampling(sampled=n, fraud_delays=delays)


def _probability(latent: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(latent - 4.0)))


def _decide(latent: np.ndarray, threshold: float) -> np.ndarray:
    review = threshold - 0.5
    return np.where(latent >= threshold, BLOCK, np.where(latent >= review, REVIEW, ALLOW)).astype(
        np.int8
    )
