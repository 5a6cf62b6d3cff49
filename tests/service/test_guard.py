"""The rollback guard: its rules (exact numbers, and by simulation their false-alarm and
detection rates), and the guard against a real Redis registry: one rollback however many
replicas judge, never a rollback of a rollback, a cooldown, and a probation that ends."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
import redis
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from registry import (
    Deployment,
    FileArtifactStore,
    ModelRegistry,
    SettingsError,
    Stamps,
    load_settings,
)
from service.guard import (
    Bounds,
    Breach,
    Guard,
    RollbackTarget,
    cooldown_key,
    judge,
    psi_chance,
    rise_beyond,
)
from service.live import LiveModels, ModelSet
from service.metrics import GUARD_RULES, SCORE_BUCKETS, ServiceMetrics
from service.settings import ServiceSettings
from service.signals import Counts, Reading, Requests
from service.watch import guard_bounds
from tests.clocks import Clock
from tests.lifecycle import NAME, production, register
from tests.service.helpers import counts, loaded

BOUNDS = Bounds(
    min_requests=100,
    max_error_ratio=0.02,
    max_p99_ratio=3.0,
    p99_floor_s=0.025,
    max_block_rate=0.05,
    max_psi=0.5,
    noise_sigmas=3.0,
)
RNG = np.random.default_rng(11)
BLOCK_RATE = (
    "block rate 0.7500 of 200 transactions against 0.0100 of 1000: a rise of at least +0.6443 "
    "at 3 standard errors (bound +0.05)"
)


def good(n: int) -> list[float]:
    """Scores of a healthy model: Beta(1, 20) (mean 0.05; about 1 in 2,000 blocked)."""
    return [float(x) for x in RNG.beta(1, 20, n)]


def test_each_rule_with_its_numbers() -> None:
    old, ok = counts(good(1000)), Requests(1000, 0)
    assert judge(counts(good(200)), Requests(200, 0), old, ok, BOUNDS) is None
    failing = judge(Counts(), Requests(200, 30), old, Requests(1000, 10), BOUNDS)
    assert failing == Breach(
        "error_ratio",
        "5xx share 0.1500 of 200 requests against 0.0100 before: a rise of at least +0.0658 "
        "at 3 standard errors (bound +0.02)",
    )
    # p99 inside the bucket (0.1, 0.25]: 0.1 + 0.15 x 198/200; the old one inside
    # (0.00075, 0.001]: 0.00075 + 0.00025 x 990/1000.
    slow = judge(counts(good(200), latency_s=0.2), ok, old, ok, BOUNDS)
    assert slow == Breach("p99", "model-call p99 248.50 ms against 1.00 ms (bound x3, floor 25 ms)")
    blocking = judge(
        counts([0.95] * 150 + good(50)), ok, counts([0.95] * 10 + good(990)), ok, BOUNDS
    )
    assert blocking == Breach("block_rate", BLOCK_RATE)
    shifted = judge(counts([0.5] * 200), ok, old, ok, BOUNDS)
    assert shifted is not None
    assert shifted.rule == "score_psi"
    assert shifted.numbers.startswith("score PSI ")
    assert shifted.numbers.endswith(
        " over 200 transactions against 1000, of which chance alone gives up to 0.140 at 3 "
        "standard deviations (bound 0.5 beyond chance)"
    )
    # Every rule has a counter series from the start (alerts count its increase).
    assert {b.rule for b in (failing, slow, blocking, shifted)} == set(GUARD_RULES)
    # Too few transactions on either side: nothing is judged (but errors are, by requests).
    assert judge(counts([0.95] * 99), ok, old, ok, BOUNDS) is None
    assert judge(counts([0.95] * 200), ok, counts(good(99)), ok, BOUNDS) is None
    assert judge(Counts(), Requests(99, 99), old, ok, BOUNDS) is None


def test_default_bounds_rarely_pull_a_good_model_and_always_pull_a_bad_one() -> None:
    """Simulation at the default settings and the smallest sample judged (200 transactions
    against a reference of 2,000): a retrained model with the same score distribution and
    an error rate of 0.5% on both sides is rolled back in < 1% of 500 draws; a model that
    blocks 30% of payments in all of them, and one that fails 10% of requests in all of
    them by its 500th request (at 200, 13 failures against 0.4% are not yet beyond chance)."""
    settings = ServiceSettings()
    bounds = guard_bounds(settings)
    n, ref = settings.guard_min_requests, 2000

    def requests(count: int, rate: float) -> Requests:
        return Requests(count, int(RNG.binomial(count, rate)))

    def latency(count: int) -> list[float]:
        return [float(x) for x in RNG.exponential(0.0004, count)]

    false_alarms = sum(
        judge(
            counts(good(n), latency(n)),
            requests(n, 0.005),
            counts(good(ref), latency(ref)),
            requests(ref, 0.005),
            bounds,
        )
        is not None
        for _ in range(500)
    )
    assert false_alarms / 500 < 0.01
    for _ in range(100):
        blocking = [0.95 if RNG.random() < 0.3 else s for s in good(n)]
        old = counts(good(ref), latency(ref))
        assert (
            judge(
                counts(blocking, latency(n)), requests(n, 0.005), old, requests(ref, 0.005), bounds
            )
            is not None
        )
        failing = requests(500, 0.1)
        assert judge(counts(good(n), latency(n)), failing, old, requests(ref, 0.005), bounds)


@dataclasses.dataclass(frozen=True)
class Traffic:
    """A simulated probation: the previous version's ``reference`` transactions blocked at
    ``block_rate``; the new version's growing by ``per_look`` between the guard's looks."""

    block_rate: float
    reference: int
    per_look: int
    looks: int


def probation(
    rng: np.random.Generator, bounds: Bounds, traffic: Traffic, rise: float
) -> int | None:
    """One probation judged look by look as the guard does, the new version blocking at
    ``traffic.block_rate + rise``: the new transactions judged at the first breach, None when
    the probation passed.  Only the block counts move (no scores or latencies), so only
    ``block_rate`` can break."""
    reference, per_look = traffic.reference, traffic.per_look
    old = Counts(scored=reference, blocked=int(rng.binomial(reference, traffic.block_rate)))
    ok = Requests(reference, 0)
    blocked = rng.binomial(per_look, traffic.block_rate + rise, traffic.looks).cumsum()
    for look in range(traffic.looks):
        scored = per_look * (look + 1)
        new = Counts(scored=scored, blocked=int(blocked[look]))
        if judge(new, Requests(scored, 0), old, ok, bounds) is not None:
            return scored
    return None


def test_over_a_whole_probation_of_looks_chance_does_not_roll_back_a_good_model() -> None:
    """The guard looks every interval, so a rule is tried many times per probation.  Known
    truth by simulation: a model blocking exactly as often as the previous one, at a block
    rate of 0.28 (the live test's models), is rolled back in < 1% of probations, where the
    point estimate against the bound (0 standard errors) rolls it back in more than 15%: the
    rollback a clean-clone CI run saw.  At the defaults over 15 minutes of looks, a rise of
    twice the bound is still caught in >= 95% of probations, and a rise of exactly the bound
    (what the bound tolerates) in <= 5%."""
    rng = np.random.default_rng(12)
    live = Traffic(block_rate=0.28, reference=272, per_look=20, looks=30)  # 6 s of 0.2 s looks
    noisy = dataclasses.replace(BOUNDS, noise_sigmas=0.0)
    draws = 1000
    pulled = sum(probation(rng, BOUNDS, live, 0.0) is not None for _ in range(draws))
    pulled_by_point = sum(probation(rng, noisy, live, 0.0) is not None for _ in range(draws))
    assert pulled / draws < 0.01
    assert pulled_by_point / draws > 0.15

    defaults = guard_bounds(ServiceSettings())
    day = Traffic(block_rate=0.28, reference=2000, per_look=100, looks=900)
    bound, draws = defaults.max_block_rate, 200
    caught = [probation(rng, defaults, day, 2 * bound) for _ in range(draws)]
    at_bound = [probation(rng, defaults, day, bound) for _ in range(draws)]
    good_model = [probation(rng, defaults, day, 0.0) for _ in range(draws)]
    assert sum(n is not None for n in caught) / draws >= 0.95
    assert sum(n is not None for n in at_bound) / draws <= 0.05
    assert sum(n is not None for n in good_model) / draws < 0.01
    first = sorted(n for n in caught if n is not None)
    print(
        f"\nguard simulation: live-test setup, same model pulled in {pulled / 10:.1f}% "
        f"(point estimate: {pulled_by_point / 10:.1f}%); defaults, rise of twice the bound "
        f"caught in {len(first) / 2:.1f}% after a median of {first[len(first) // 2]} new "
        f"transactions, rise of the bound pulled in "
        f"{sum(n is not None for n in at_bound) / 2:.1f}%, same model in "
        f"{sum(n is not None for n in good_model) / 2:.1f}%"
    )


def psi_probation(
    rng: np.random.Generator,
    bounds: Bounds,
    traffic: Traffic,
    old_scores: tuple[float, float],
    new_scores: tuple[float, float],
) -> int | None:
    """One probation judged look by look: the previous version's scores Beta(*old_scores),
    the new one's Beta(*new_scores), the same model-call latency.  The new transactions
    judged at the first breach (always ``score_psi``), None when it passed."""
    old = counts(rng.beta(*old_scores, traffic.reference).tolist())
    ok = Requests(traffic.reference, 0)
    new = Counts()
    for _ in range(traffic.looks):
        new = new + counts(rng.beta(*new_scores, traffic.per_look).tolist())
        breach = judge(new, Requests(new.scored, 0), old, ok, bounds)
        if breach is not None:
            assert breach.rule == "score_psi"
            return new.scored
    return None


def test_the_score_psi_is_judged_beyond_what_chance_gives() -> None:
    """Known truth by simulation, the guard looking at a growing sample as it does.  With
    ``min_requests`` at 20 (the setting allows 1), a model with the same score distribution
    as the previous one (a reference of 2,000) is rolled back by the PSI point estimate in
    more than half of the probations at Beta(2, 8) scores, and in every one for fraud-like
    scores (Beta(1, 20): most in the lowest bucket, so the half count the PSI adds to each
    empty bucket weighs); beyond chance in < 1%.  At the defaults, a model whose scores
    moved from Beta(2, 8) to Beta(3, 5) (a PSI of 1.47, three times the bound) is still
    caught in every probation, at the first look."""
    rng = np.random.default_rng(13)
    # Only the PSI judged: with no failures and no blocks on either side, the share rules'
    # point estimates (Agresti-Caffo: 1 of 22 against 1 of 2,002) would break 0.02 at once.
    small = dataclasses.replace(BOUNDS, min_requests=20, max_error_ratio=0.5, max_block_rate=0.5)
    point = dataclasses.replace(small, noise_sigmas=0.0)
    early = Traffic(block_rate=0.0, reference=2000, per_look=20, looks=30)
    draws, pulled, by_point = 200, {}, {}
    for scores in ((2.0, 8.0), (1.0, 20.0)):
        pulled[scores] = sum(
            psi_probation(rng, small, early, scores, scores) is not None for _ in range(draws)
        )
        by_point[scores] = sum(
            psi_probation(rng, point, early, scores, scores) is not None for _ in range(draws)
        )
        assert pulled[scores] / draws < 0.01
    assert by_point[(2.0, 8.0)] / draws > 0.3
    assert by_point[(1.0, 20.0)] == draws

    defaults = guard_bounds(ServiceSettings())
    day = Traffic(block_rate=0.0, reference=2000, per_look=100, looks=60)
    moved = [psi_probation(rng, defaults, day, (2, 8), (3, 5)) for _ in range(100)]
    assert all(n is not None and n <= defaults.min_requests for n in moved)
    same = [psi_probation(rng, defaults, day, (2, 8), (2, 8)) for _ in range(100)]
    assert sum(n is not None for n in same) < 2
    print(
        f"\nguard PSI simulation: min_requests 20, same scores pulled in "
        f"{[100 * n / draws for n in pulled.values()]}% (point estimate: "
        f"{[100 * n / draws for n in by_point.values()]}%); defaults, scores moved caught in "
        f"{sum(n is not None for n in moved)}%"
    )


def test_the_chance_psi_shrinks_with_the_samples_and_is_0_at_0_sigmas() -> None:
    bins = len(SCORE_BUCKETS) + 1
    assert psi_chance(bins, 200, 2000, 3.0) == pytest.approx(0.1288, abs=1e-4)
    assert psi_chance(bins, 20, 2000, 3.0) > BOUNDS.max_psi
    assert psi_chance(bins, 2000, 2000, 3.0) < psi_chance(bins, 200, 2000, 3.0) / 5
    assert psi_chance(bins, 20, 2000, 0.0) == 0.0


def test_a_rise_beyond_chance_is_judged_at_shares_of_0_and_1() -> None:
    # 3 errors in 100 against none in 1,000 is a rise of 0.03 but not certain: no breach.
    assert rise_beyond(3, 100, 0, 1000, bound=0.02, sigmas=3.0) is None
    # Every payment blocked against none: certain at any count past a handful.
    low = rise_beyond(100, 100, 0, 1000, bound=0.05, sigmas=3.0)
    assert low is not None
    assert 0.9 < low < 1.0
    # 0 standard errors: the (Agresti-Caffo) point estimate against the bound.
    assert rise_beyond(40, 100, 30, 100, bound=0.05, sigmas=0.0) is not None
    assert rise_beyond(40, 100, 30, 100, bound=0.05, sigmas=3.0) is None


@pytest.fixture
def registry(redis_client: redis.Redis, tmp_path: Path) -> ModelRegistry:
    registry = ModelRegistry(redis_client, FileArtifactStore(tmp_path / "artifacts"))
    production(registry, "v1")
    register(registry, "v2", bias=-1.0)
    registry.approve(NAME, "v2", actor="ana", reason="better", force=True)
    registry.promote(NAME, "v2", actor="retrain-worker@w")
    return registry


def promoted_at(registry: ModelRegistry, version: str) -> float:
    stamp = registry.stamps(NAME, version).production
    assert stamp is not None
    return stamp.at.timestamp()


def replica(
    target: RollbackTarget,
    redis_url: str,
    *,
    serving: str = "v2",
    clock: Clock,
    metrics: ServiceMetrics | None = None,
) -> Guard:
    """A guard as one scorer replica runs it, serving ``serving``."""
    return Guard(
        LiveModels(ModelSet(1, loaded(serving))),
        metrics or ServiceMetrics(CollectorRegistry()),
        target,
        lambda: aioredis.Redis.from_url(redis_url),
        name=NAME,
        bounds=BOUNDS,
        probation_s=60,
        cooldown_s=30,
        actor="guard@test",
        clock=clock,
    )


class Flaky:
    """The registry, unreachable for its next ``failures`` calls."""

    def __init__(self, registry: ModelRegistry, failures: int) -> None:
        self.registry, self.failures = registry, failures

    def _call(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    def deployment(self, name: str) -> Deployment:
        self._call()
        return self.registry.deployment(name)

    def stamps(self, name: str, version: str) -> Stamps:
        self._call()
        return self.registry.stamps(name, version)

    def rollback(
        self,
        name: str,
        *,
        actor: str,
        reason: str = "",
        expected: str | None = None,
        guard: bool = False,
    ) -> str:
        self._call()
        return self.registry.rollback(
            name, actor=actor, reason=reason, expected=expected, guard=guard
        )


REFERENCE = Reading(Requests(1000, 0), {"v1": counts([0.95] * 10 + good(990))})
BAD = Reading(Requests(1200, 0), {**REFERENCE.versions, "v2": counts([0.97] * 150 + good(50))})


def watching(guard: Guard) -> bool:
    """Whether the guard has a promotion on probation (a call, so mypy keeps no narrowing)."""
    return guard.probation is not None


def rollbacks(registry: ModelRegistry) -> list[str]:
    return [
        e.reason for e in registry.audit(NAME) if e.action == "rollback" and e.to_state == "retired"
    ]


def test_a_bad_promotion_is_rolled_back_with_the_rule_and_numbers(
    registry: ModelRegistry, redis_client: redis.Redis, redis_url: str
) -> None:
    metrics = ServiceMetrics(CollectorRegistry())
    clock = Clock(promoted_at(registry, "v2") + 5)
    guard = replica(registry, redis_url, clock=clock, metrics=metrics)
    value = metrics.registry.get_sample_value
    asyncio.run(guard.tick(REFERENCE))
    assert guard.probation is not None
    assert (guard.probation.version, guard.probation.previous) == ("v2", "v1")
    assert value("shadowline_guard_probation") == 1.0
    asyncio.run(guard.tick(BAD))
    assert registry.deployment(NAME).production == "v1"
    assert rollbacks(registry) == [
        f"rollback guard: rule block_rate broken during probation of fraud:v2 against v1: "
        f"{BLOCK_RATE}"
    ]
    assert registry.audit(NAME)[-1].actor == "guard@test"
    assert registry.stamps(NAME, "v2").rolled_back_by_guard
    assert redis_client.get(cooldown_key(NAME)) == "v2 (block_rate)"
    assert 0 < redis_client.pttl(cooldown_key(NAME)) <= 30_000
    assert value("shadowline_guard_rollbacks_total", {"rule": "block_rate"}) == 1.0
    assert value("shadowline_guard_probation") == 0.0
    assert not watching(guard)


def test_replicas_judging_the_same_promotion_roll_it_back_once(
    registry: ModelRegistry, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(promoted_at(registry, "v2") + 5)
    guards = [replica(registry, redis_url, clock=clock) for _ in range(4)]

    async def all_tick(reading: Reading) -> None:
        await asyncio.gather(*(guard.tick(reading) for guard in guards))

    asyncio.run(all_tick(REFERENCE))
    with caplog.at_level(logging.INFO, logger="service.guard"):
        asyncio.run(all_tick(BAD))
    assert len(rollbacks(registry)) == 1
    assert registry.verify_audit(NAME).ok
    lost = [r.getMessage() for r in caplog.records if "not rolled back here" in r.getMessage()]
    assert (
        lost
        == [
            "guard: fraud:v2 broke rule block_rate; not rolled back here: cannot roll back model "
            "fraud from v2: production is v1"
        ]
        * 3
    )


def test_no_rollback_of_a_rollback_nor_within_the_cooldown(
    registry: ModelRegistry,
    redis_client: redis.Redis,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry.rollback(NAME, actor="ana", reason="by hand")
    clock = Clock(promoted_at(registry, "v1") + 5)
    back = replica(registry, redis_url, serving="v1", clock=clock)  # production by a rollback
    asyncio.run(back.tick(REFERENCE))
    assert not watching(back)
    # A new promotion while the guard cools down after an earlier rollback: judged, not pulled.
    register(registry, "v3", bias=-1.5)
    registry.approve(NAME, "v3", actor="ana", reason="try", force=True)
    registry.promote(NAME, "v3", actor="ana")
    redis_client.set(cooldown_key(NAME), "v2 (block_rate)", px=30_000)
    clock.now = promoted_at(registry, "v3") + 10
    guard = replica(registry, redis_url, serving="v3", clock=clock)
    asyncio.run(guard.tick(REFERENCE))
    bad = Reading(BAD.requests, {**REFERENCE.versions, "v3": BAD.of("v2")})
    with caplog.at_level(logging.INFO, logger="service.guard"):
        asyncio.run(guard.tick(bad))
    assert registry.deployment(NAME).production == "v3"
    assert rollbacks(registry) == ["by hand"]
    assert caplog.records[-1].getMessage() == (
        f"guard: fraud:v3 broke rule block_rate ({BLOCK_RATE}), but the guard is cooling down "
        "after rolling back v2 (block_rate): no rollback"
    )
    assert not watching(guard)


def test_probation_ends_and_a_late_replica_does_not_start_one(
    registry: ModelRegistry, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(promoted_at(registry, "v2") + 5)
    guard = replica(registry, redis_url, clock=clock)
    asyncio.run(guard.tick(REFERENCE))
    assert watching(guard)
    healthy = Reading(BAD.requests, {**REFERENCE.versions, "v2": counts(good(200))})
    asyncio.run(guard.tick(healthy))
    assert watching(guard)
    clock.now += 60
    with caplog.at_level(logging.INFO, logger="service.guard"):
        asyncio.run(guard.tick(BAD))  # after probation even a bad reading is not judged
    assert not watching(guard)
    assert caplog.records[-1].getMessage() == "guard: fraud:v2 passed probation"
    late = replica(registry, redis_url, clock=clock)
    asyncio.run(late.tick(BAD))
    assert not watching(late)
    assert registry.deployment(NAME).production == "v2"


def test_an_unreachable_registry_is_logged_and_retried(
    registry: ModelRegistry, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = Flaky(registry, failures=1)
    guard = replica(flaky, redis_url, clock=Clock(promoted_at(registry, "v2") + 5))
    with caplog.at_level(logging.WARNING, logger="service.guard"):
        asyncio.run(guard.tick(REFERENCE))
    assert [r.getMessage() for r in caplog.records] == [
        "guard: registry unavailable, retrying: ConnectionError: Error 111 connecting to "
        "127.0.0.1:1. Connection refused."
    ]
    assert not watching(guard)
    asyncio.run(guard.tick(REFERENCE))  # the look-up is retried at the next tick
    assert watching(guard)
    flaky.failures = 1  # and so is the rollback
    asyncio.run(guard.tick(BAD))
    assert registry.deployment(NAME).production == "v2"
    asyncio.run(guard.tick(BAD))
    assert registry.deployment(NAME).production == "v1"


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        (
            "guard_max_error_ratio",
            1.0,
            "SHADOWLINE_GUARD_MAX_ERROR_RATIO=1.0: Input should be less than 1",
        ),
        (
            "guard_max_block_rate",
            0.0,
            "SHADOWLINE_GUARD_MAX_BLOCK_RATE=0.0: Input should be greater than 0",
        ),
        (
            "guard_max_p99_ratio",
            0.9,
            "SHADOWLINE_GUARD_MAX_P99_RATIO=0.9: Input should be greater than 1",
        ),
        ("guard_max_psi", -1.0, "SHADOWLINE_GUARD_MAX_PSI=-1.0: Input should be greater than 0"),
        (
            "guard_min_requests",
            0,
            "SHADOWLINE_GUARD_MIN_REQUESTS=0: Input should be greater than or equal to 1",
        ),
        (
            "guard_probation_s",
            0.5,
            "Value error, SHADOWLINE_GUARD_PROBATION_S (0.5) must be longer than "
            "SHADOWLINE_GUARD_INTERVAL_S (1): the guard would never look at a promotion during "
            "its probation",
        ),
    ],
)
def test_impossible_guard_bounds_are_refused_naming_the_setting(
    setting: str, value: float, message: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(ServiceSettings, **{setting: value})
    assert str(caught.value) == f"invalid settings for ServiceSettings:\n  {message}"
