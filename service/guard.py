"""The rollback guard: a promotion stays on probation, and a model that breaks a bound goes back.

Where it runs, and why: in every scorer replica, as a task beside the registry follower
(:mod:`service.watch` feeds it a :class:`~service.signals.Reading` each second), not in a
separate process.

* The signals are already here: the replica counts every score, decision, model-call latency
  and 5xx it serves, per production version, so the guard reads them from memory (about
  0.1 ms a second) and adds nothing to the request path.  A separate process would have to
  query Prometheus (one more dependency that must be up for rollbacks to work, plus scrape and
  rate windows of delay) or discover and scrape every replica itself.
* Every replica sees a fair share of the traffic behind the load balancer, so each judges the
  new model on its own; the first to find a bound broken rolls back through the registry with
  ``rollback(expected=<the new version>, guard=True)``.  That is one atomic transaction which
  refuses once production moved on, so several replicas (or uvicorn workers) make one rollback:
  the others get IllegalTransition and only log it.
* Nothing to deploy, scale or keep alive: the guard lives exactly where the model serves.

A promotion is judged against the version it replaced (``previous_production``), from that
replica's own counts: the new version since it was loaded, the previous one over its whole
time in production here.  A rule is judged once both have at least ``min_requests``
transactions; a replica that started after the promotion has no reference and judges nothing
(the others do).  Rules, in order (:func:`judge`):

``error_ratio``  the share of scoring requests answered 5xx rose by more than the bound
``p99``          the model-call p99 exceeds ``max_p99_ratio`` x the previous one, and the floor
``block_rate``   the share of transactions blocked rose by more than the bound
``score_psi``    the PSI of the score histogram against the previous version's exceeds the bound

Every rule but ``p99`` is judged beyond chance.  A rise of one of the two shares breaks its
bound only when it exceeds it by ``noise_sigmas`` standard errors (:func:`rise_beyond`); the
PSI only when it exceeds its bound by what chance alone gives two samples of those sizes from
one distribution, its mean plus ``noise_sigmas`` standard deviations (:func:`psi_chance`).

The guard looks once a second for the whole probation, so a point estimate against the bound
would roll back a good model by chance sooner or later: at a block rate near 0.3 and 120 new
transactions against 270, one standard error of the rise is 0.05, the default bound itself (a
clean-clone CI run saw exactly that rollback of a retrained model).  The PSI of two samples
of one distribution is not 0 either: about 0.05 at 200 transactions against 2,000 over the 11
score buckets, but 0.4 to 0.75 at 20, above the default bound of 0.5 for fraud-like scores
(most in the lowest bucket), and ``SHADOWLINE_GUARD_MIN_REQUESTS`` may be set that low.
``tests/service/test_guard.py`` measures the false-rollback and detection rates over a whole
probation of looks by simulation.

Never flapping: only a version that became production by ``promote`` is on probation (a
rollback's result never is), probation ends ``probation_s`` after the promotion (registry
time), and after a guard rollback a Redis key holds every replica's guard for ``cooldown_s``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import redis
import redis.asyncio as aioredis

from registry import Deployment, IllegalTransition, RegistryError, Stamps
from service.live import LiveModels
from service.metrics import ServiceMetrics
from service.signals import Counts, Reading, Requests, psi

log = logging.getLogger(__name__)


def cooldown_key(name: str) -> str:
    """Redis key set (with a TTL) after a guard rollback of ``name``: the guard waits."""
    return f"shadowline:guard:cooldown:{name}"


def guard_actor() -> str:
    """How the guard names itself in the audit log."""
    return f"guard@{socket.gethostname()}"


class RollbackTarget(Protocol):
    """The part of ``registry.ModelRegistry`` the guard uses."""

    def deployment(self, name: str) -> Deployment: ...
    def stamps(self, name: str, version: str) -> Stamps: ...
    def rollback(
        self,
        name: str,
        *,
        actor: str,
        reason: str = "",
        expected: str | None = None,
        guard: bool = False,
    ) -> str: ...


@dataclass(frozen=True)
class Bounds:
    """What a new production model may not do during probation (see the module docstring)."""

    min_requests: int
    max_error_ratio: float
    max_p99_ratio: float
    p99_floor_s: float
    max_block_rate: float
    max_psi: float
    noise_sigmas: float  # how far beyond its bound a rule must be, in standard errors


@dataclass(frozen=True)
class Breach:
    """A broken rule and the numbers that broke it."""

    rule: str
    numbers: str


def rise_beyond(
    new_hits: int, new_n: int, old_hits: int, old_n: int, bound: float, sigmas: float
) -> float | None:
    """The rise of a share from ``old_hits / old_n`` to ``new_hits / new_n`` at its lower end,
    ``sigmas`` standard errors below the estimate, when that is above ``bound``; else None.

    Agresti-Caffo: one hit and one miss are added to each side before the shares and the
    standard error of their difference are taken, which keeps the error honest at shares near
    0 or 1 (a plain Wald error is 0 there, and 3 errors of 100 against none would look certain).
    """
    new = (new_hits + 1) / (new_n + 2)
    old = (old_hits + 1) / (old_n + 2)
    error = math.sqrt(new * (1 - new) / (new_n + 2) + old * (1 - old) / (old_n + 2))
    low = new - old - sigmas * error
    return low if low > bound else None


def psi_chance(bins: int, new_n: int, old_n: int, sigmas: float) -> float:
    """The PSI two samples of ``new_n`` and ``old_n`` transactions from ONE distribution reach
    by chance over ``bins`` buckets: its mean plus ``sigmas`` standard deviations.

    For samples of one distribution, PSI x n (n the harmonic size, 1 / (1/new_n + 1/old_n))
    is about chi-square with ``bins - 1`` degrees of freedom: mean ``bins - 1``, variance
    ``2 (bins - 1)``.  An approximation: the half count the PSI adds to every bucket raises
    the PSI of a small sample over sparse buckets (fraud scores, most in the lowest bucket:
    a mean of 0.75 at 20 transactions against 2,000, not 0.5), yet the chance level stays
    above 99.8% of such PSIs at 20 transactions and above 99% from 50 to 1,000
    (2,000 draws each at Beta(1, 20), Beta(2, 2) and Beta(0.5, 0.5) scores).  ``sigmas`` 0
    gives 0: the PSI itself against the bound, as the share rules judge their point estimate.
    """
    if sigmas == 0:
        return 0.0
    return (bins - 1 + sigmas * math.sqrt(2 * (bins - 1))) * (1 / new_n + 1 / old_n)


def judge(
    new: Counts, new_requests: Requests, old: Counts, old_requests: Requests, bounds: Bounds
) -> Breach | None:
    """The first rule ``new`` breaks against ``old`` (None: none, or too few transactions)."""
    n = bounds.min_requests
    if new_requests.total >= n:  # failed requests score nothing: judged on requests
        low = rise_beyond(
            new_requests.failed,
            new_requests.total,
            old_requests.failed,
            old_requests.total,
            bounds.max_error_ratio,
            bounds.noise_sigmas,
        )
        if low is not None:
            return Breach(
                "error_ratio",
                f"5xx share {new_requests.error_ratio:.4f} of {new_requests.total} requests "
                f"against {old_requests.error_ratio:.4f} before: a rise of at least +{low:.4f} "
                f"at {bounds.noise_sigmas:g} standard errors (bound +{bounds.max_error_ratio:g})",
            )
    if new.scored < n or old.scored < n:
        return None
    new_p99, old_p99 = new.p99(), old.p99()
    if new_p99 > bounds.p99_floor_s and new_p99 > bounds.max_p99_ratio * old_p99:
        return Breach(
            "p99",
            f"model-call p99 {new_p99 * 1e3:.2f} ms against {old_p99 * 1e3:.2f} ms (bound "
            f"x{bounds.max_p99_ratio:g}, floor {bounds.p99_floor_s * 1e3:g} ms)",
        )
    low = rise_beyond(
        new.blocked, new.scored, old.blocked, old.scored, bounds.max_block_rate, bounds.noise_sigmas
    )
    if low is not None:
        return Breach(
            "block_rate",
            f"block rate {new.block_rate:.4f} of {new.scored} transactions against "
            f"{old.block_rate:.4f} of {old.scored}: a rise of at least +{low:.4f} at "
            f"{bounds.noise_sigmas:g} standard errors (bound +{bounds.max_block_rate:g})",
        )
    shift = psi(old.scores, new.scores)
    chance = psi_chance(len(new.scores), new.scored, old.scored, bounds.noise_sigmas)
    if shift - chance > bounds.max_psi:
        return Breach(
            "score_psi",
            f"score PSI {shift:.3f} over {new.scored} transactions against {old.scored}, "
            f"of which chance alone gives up to {chance:.3f} at {bounds.noise_sigmas:g} "
            f"standard deviations (bound {bounds.max_psi:g} beyond chance)",
        )
    return None


@dataclass
class Probation:
    """One promotion being watched by this replica."""

    version: str
    previous: str
    promoted_at: float  # unix time of the promotion's audit entry
    ends_at: float
    reference: Counts  # the previous version's production counts, when watching began
    before: Requests  # scoring requests until watching began


class Guard:
    """Watches promotions and rolls back bad ones (see the module docstring).  ``tick`` is
    called by :class:`service.watch.Watch` with each reading."""

    def __init__(
        self,
        live: LiveModels,
        metrics: ServiceMetrics,
        registry: RollbackTarget,
        connect: Callable[[], aioredis.Redis],
        *,
        name: str,
        bounds: Bounds,
        probation_s: float,
        cooldown_s: float,
        actor: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._live = live
        self._metrics = metrics
        self._registry = registry
        self._connect = connect
        self._name = name
        self.bounds = bounds
        self._probation_s = probation_s
        self._cooldown_s = cooldown_s
        self._actor = actor or guard_actor()
        self._clock = clock
        self._seen: str | None = None  # the production version the last tick saw
        self._pending = False  # a new production version whose promotion is not looked up
        self.probation: Probation | None = None

    async def tick(self, reading: Reading) -> None:
        """Follow production's changes and judge the one on probation.  Registry and Redis
        failures are logged and retried at the next tick, never raised."""
        production = self._live.current.production
        version = None if production is None else production.version
        if version != self._seen:
            self._seen, self._pending = version, version is not None
            self._end(None)
        try:
            if self._pending and version is not None:
                self.probation = await asyncio.to_thread(self._look_up, version, reading)
                self._pending = False
                self._metrics.guard_probation.set(1 if self.probation else 0)
            if self.probation is not None:
                await self._judge(self.probation, reading)
        except (redis.RedisError, OSError, RegistryError) as exc:
            log.warning("guard: registry unavailable, retrying: %s: %s", type(exc).__name__, exc)

    def _look_up(self, version: str, reading: Reading) -> Probation | None:
        """The probation of ``version`` if it came by a promotion within ``probation_s``."""
        stamp = self._registry.stamps(self._name, version).production
        previous = self._registry.deployment(self._name).previous_production
        if stamp is None or stamp.action != "promote" or previous is None:
            return None
        promoted_at = stamp.at.timestamp()
        ends_at = promoted_at + self._probation_s
        if self._clock() >= ends_at:
            return None
        log.info(
            "guard: %s:%s is on probation until %s (against %s)",
            self._name,
            version,
            time.strftime("%H:%M:%S", time.gmtime(ends_at)),
            previous,
        )
        return Probation(
            version=version,
            previous=previous,
            promoted_at=promoted_at,
            ends_at=ends_at,
            reference=reading.of(previous),
            before=reading.requests,
        )

    def _end(self, outcome: str | None) -> None:
        if self.probation is not None and outcome is not None:
            log.info("guard: %s:%s %s", self._name, self.probation.version, outcome)
        self.probation = None
        self._metrics.guard_probation.set(0)

    async def _judge(self, probation: Probation, reading: Reading) -> None:
        if self._clock() >= probation.ends_at:
            self._end("passed probation")
            return
        breach = judge(
            reading.of(probation.version),
            reading.requests - probation.before,
            probation.reference,
            probation.before,
            self.bounds,
        )
        if breach is None:
            return
        client = self._connect()
        try:
            holder = await client.get(cooldown_key(self._name))
            if holder is not None:
                after = holder.decode() if isinstance(holder, bytes) else str(holder)
                self._end(
                    f"broke rule {breach.rule} ({breach.numbers}), but the guard is "
                    f"cooling down after rolling back {after}: no rollback"
                )
                return
            reason = (
                f"rollback guard: rule {breach.rule} broken during probation of "
                f"{self._name}:{probation.version} against {probation.previous}: {breach.numbers}"
            )
            try:
                await asyncio.to_thread(
                    self._registry.rollback,
                    self._name,
                    actor=self._actor,
                    reason=reason,
                    expected=probation.version,
                    guard=True,
                )
            except IllegalTransition as exc:  # another replica (or a person) was first
                self._end(f"broke rule {breach.rule}; not rolled back here: {exc}")
                return
            self._metrics.guard_rollbacks.labels(breach.rule).inc()
            log.error("guard: rolled back %s:%s: %s", self._name, probation.version, reason)
            self._end(None)
            if self._cooldown_s > 0:
                await client.set(
                    cooldown_key(self._name),
                    f"{probation.version} ({breach.rule})",
                    px=max(1, round(self._cooldown_s * 1000)),
                )
        finally:
            await client.aclose()
