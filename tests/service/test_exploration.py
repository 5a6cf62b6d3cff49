"""Exploration: a random share of would-be blocks is answered review and recorded as explored."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from registry import ModelRegistry, SettingsError, load_settings
from registry.records import decode_score
from service.app import create_app
from service.live import LiveModels, ModelSet
from service.metrics import ServiceMetrics
from service.scorer import Scorer
from service.settings import ServiceSettings
from service.shadow import Scored, build_record
from tests.factories import random_rows
from tests.service.helpers import build, make_production, sample_value
from tests.service.kafka_helpers import read_records
from tests.service.server import serving

ROWS = random_rows(n=200, seed=3)
ALWAYS_BLOCKS = 8.0  # bias: every row scores above the block threshold (0.9)


def scorer_with(
    metrics: ServiceMetrics, share: float, *, bias: float = ALWAYS_BLOCKS, seed: int = 11
) -> tuple[Scorer, list[Scored]]:
    submitted: list[Scored] = []
    live = LiveModels(ModelSet(1, build("v1", bias=bias)))
    scorer = Scorer(
        live,
        submitted.append,
        metrics,
        model_name="fraud",
        max_batch=len(ROWS),
        exploration_share=share,
        rng=random.Random(seed),
    )
    return scorer, submitted


def score_all(scorer: Scorer, rounds: int) -> list[str]:
    """Answers to ``rounds`` batches of every row plus as many single requests."""
    answers: list[str] = []
    for r in range(rounds):
        batch = [{"transaction_id": f"b{r}-{i}", "features": row} for i, row in enumerate(ROWS)]
        body = orjson.loads(scorer.score_batch(orjson.dumps({"transactions": batch})))
        answers += [result["decision"] for result in body["results"]]
        for i, row in enumerate(ROWS):
            single = {"transaction_id": f"s{r}-{i}", "features": row}
            answers.append(orjson.loads(scorer.score(orjson.dumps(single)))["decision"])
    return answers


def test_a_share_of_would_be_blocks_is_answered_review_and_recorded(
    metrics: ServiceMetrics,
) -> None:
    share = 0.3
    scorer, submitted = scorer_with(metrics, share)
    answers = score_all(scorer, rounds=8)
    n = len(answers)
    assert n == 3200
    assert all(item.decision == "block" for item in submitted)  # the model's own decision
    explored = [item.explored for item in submitted]
    k = sum(explored)
    # Binomial(n, 0.3): 5 standard deviations either side (seeded, so this is deterministic;
    # the bound says the draw is unbiased, not that this seed is lucky).
    assert abs(k - n * share) <= 5 * math.sqrt(n * share * (1 - share))
    for answer, item in zip(answers, submitted, strict=True):
        assert answer == ("review" if item.explored else "block")
        assert item.exploration_share == share
    record = decode_score(orjson.dumps(build_record(submitted[explored.index(True)], [])))
    assert (record.production.decision, record.production.explored) == ("block", True)
    assert record.production.exploration_share == share
    assert sample_value(metrics, "shadowline_explored_total", {"version": "v1"}) == k
    decisions = {"role": "production", "version": "v1", "decision": "block"}
    assert sample_value(metrics, "shadowline_decisions_total", decisions) == n


def test_only_would_be_blocks_are_explored(metrics: ServiceMetrics) -> None:
    scorer, submitted = scorer_with(metrics, 0.5, bias=-0.5)
    answers = score_all(scorer, rounds=2)
    decided = {item.decision for item in submitted}
    assert decided == {"allow", "review", "block"}  # the rows reach every decision
    assert any(item.explored for item in submitted)
    for answer, item in zip(answers, submitted, strict=True):
        assert item.explored <= (item.decision == "block")
        assert answer == ("review" if item.explored else item.decision)
        assert answer != "allow" or item.decision == "allow"  # never turned into allow


def test_no_exploration_by_default(metrics: ServiceMetrics, in_tmp_cwd: Path) -> None:
    scorer, submitted = scorer_with(metrics, 0.0)
    assert set(score_all(scorer, rounds=1)) == {"block"}
    assert not any(item.explored for item in submitted)
    assert {item.exploration_share for item in submitted} == {0.0}
    assert sample_value(metrics, "shadowline_explored_total", {"version": "v1"}) == 0
    assert load_settings(ServiceSettings).exploration_share == 0.0


def test_the_scorer_refuses_a_share_outside_0_to_1(metrics: ServiceMetrics) -> None:
    with pytest.raises(ValueError, match=r"^exploration_share must be within \[0, 1\]; got 1.5$"):
        scorer_with(metrics, 1.5)


@pytest.mark.parametrize("share", [0.51, 1.0, -0.1])
def test_the_share_is_bounded(share: float) -> None:
    with pytest.raises(SettingsError) as info:
        load_settings(ServiceSettings, exploration_share=share)
    bound = "less than or equal to 0.5" if share > 0 else "greater than or equal to 0"
    assert f"SHADOWLINE_EXPLORATION_SHARE={share!r}: Input should be {bound}" in str(info.value)


def test_explored_records_reach_the_scores_topic(
    registry: ModelRegistry,
    make_settings: Callable[..., ServiceSettings],
    kafka_bootstrap: str,
) -> None:
    make_production(registry, "v1", bias=ALWAYS_BLOCKS)
    settings = make_settings(exploration_share=0.3)
    batch = [{"transaction_id": f"t{i}", "features": row} for i, row in enumerate(ROWS)]
    with serving(create_app(settings, registry)) as client:
        answered = client.post("/v1/score/batch", json={"transactions": batch}).json()["results"]
        single = client.post("/v1/score", json={"transaction_id": "one", "features": ROWS[0]})
    decisions = {r["transaction_id"]: r["decision"] for r in answered}
    decisions["one"] = single.json()["decision"]
    assert set(decisions.values()) == {"review", "block"}
    records = read_records(
        kafka_bootstrap, settings.scores_topic, until=lambda got: len(got) >= len(decisions)
    )
    assert len(records) == len(decisions)
    for record in records:
        production = record.production
        assert (record.schema_version, production.decision) == (2, "block")
        assert production.exploration_share == 0.3
        expected = "review" if production.explored else "block"
        assert decisions[record.transaction_id] == expected
