"""The rollback guard live: a real scorer under steady load, a real Redis registry.

A promotion of a model that blocks nearly every payment is rolled back by the guard within
its probation, once, with no scoring request failing; a good promotion under the same load
passes its probation (and was judged: it scored enough transactions in time).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from registry import ModelRegistry
from service.settings import ServiceSettings
from tests.deploy.helpers import elapsed_until, loaded_scorer, promote, scored
from tests.lifecycle import NAME, production, register

GUARD: dict[str, Any] = {
    "guard_min_requests": 100,
    "guard_interval_s": 0.2,
    "guard_cooldown_s": 60.0,
    "reconcile_interval_s": 0.5,
}


def test_a_promotion_that_blocks_nearly_everything_is_rolled_back_once_under_load(
    registry: ModelRegistry,
    make_scorer_settings: Callable[..., ServiceSettings],
    time_bound: Callable[[float], float],
) -> None:
    production(registry, "v1")
    register(registry, "v2", bias=8.0)  # scores ~1: blocks every payment
    settings = make_scorer_settings(guard_probation_s=30.0, **GUARD)
    with loaded_scorer(registry, settings) as (client, parts, load):
        promote(client, "v2")
        promoted = time.monotonic()
        back = elapsed_until(lambda: registry.deployment(NAME).production == "v1", 60)
        assert back is not None
        assert (
            elapsed_until(lambda: client.get("/readyz").json()["production"]["version"] == "v1", 10)
            is not None
        )
        rolled_back_after = time.monotonic() - promoted
        time.sleep(0.5)  # traffic goes on after the rollback
    assert rolled_back_after < settings.guard_probation_s
    print(
        f"\nguard: rolled back {rolled_back_after:.2f} s after the promotion; "
        f"{load.answered} requests, {dict(load.versions)}"
    )
    assert load.failures == []
    assert set(load.statuses) == {200}
    assert load.versions["v2"] > 0  # the bad model did serve before it was pulled
    rollbacks = [e for e in registry.audit(NAME) if e.action == "rollback"]
    assert [(e.version, e.to_state) for e in rollbacks] == [("v2", "retired"), ("v1", "production")]
    assert rollbacks[0].actor.startswith("guard@")
    assert rollbacks[0].reason.startswith(
        "rollback guard: rule block_rate broken during probation of fraud:v2 against v1: "
        "block rate 1.0000 of "
    )
    assert registry.stamps(NAME, "v2").rolled_back_by_guard
    value = parts.metrics.registry.get_sample_value
    assert value("shadowline_guard_rollbacks_total", {"rule": "block_rate"}) == 1.0
    assert rolled_back_after <= time_bound(5.0)


def test_a_good_promotion_under_the_same_load_passes_probation(
    registry: ModelRegistry, make_scorer_settings: Callable[..., ServiceSettings]
) -> None:
    production(registry, "v1")
    register(registry, "v2", bias=-2.02)  # a retrained model: nearly the same scores
    probation = 6.0
    settings = make_scorer_settings(guard_probation_s=probation, **GUARD)
    with loaded_scorer(registry, settings) as (client, parts, load):
        promote(client, "v2")
        value = parts.metrics.registry.get_sample_value
        assert elapsed_until(lambda: value("shadowline_guard_probation") == 1.0, 10) is not None
        judged = elapsed_until(lambda: scored(parts, "v2") >= settings.guard_min_requests, 10)
        assert judged is not None
        assert judged < probation, "v2 must reach the minimum within probation to be judged"
        assert elapsed_until(lambda: value("shadowline_guard_probation") == 0.0, 30) is not None
    assert registry.deployment(NAME).production == "v2"
    assert [e for e in registry.audit(NAME) if e.action == "rollback"] == []
    assert load.failures == []
    assert load.versions["v2"] >= settings.guard_min_requests


def test_the_guard_switched_off_leaves_a_bad_promotion_alone(
    registry: ModelRegistry, make_scorer_settings: Callable[..., ServiceSettings]
) -> None:
    production(registry, "v1")
    register(registry, "v2", bias=8.0)
    settings = make_scorer_settings(guard=False, guard_probation_s=30.0, **GUARD)
    with loaded_scorer(registry, settings) as (client, parts, _):
        assert parts.watch.guard is None
        promote(client, "v2")
        assert elapsed_until(lambda: scored(parts, "v2") >= 3 * settings.guard_min_requests, 30)
    assert registry.deployment(NAME).production == "v2"
