"""Retro-shadow: archived, labeled traffic scored by registered candidates, then paired."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import redis
from typer.testing import CliRunner

from registry import ApprovalPolicy, FileArtifactStore, ModelRegistry, PolicyViolation
from registry.manifest import Decision
from registry.records import LabelRecord, ProductionScore, ScoreRecord
from retrain.evidence.archive_read import pair_archive
from retrain.evidence.frame import FRAUD, LEGIT
from shadowline.cli import app
from tests.factories import logistic_model, make_manifest
from tests.retrain.evidence.archive_helpers import DAY, write_archive
from tests.retrain.evidence.records import T0, label

N = 4000
COUNTRIES = ("US", "GB", "DE", "BR")


def _traffic() -> tuple[list[ScoreRecord], list[LabelRecord]]:
    """Fraud comes from BR (half of its payments) and rarely elsewhere; production's scores
    know nothing of it and block a tenth of the traffic.  One payment in 100 has a country
    the candidates' schema does not allow."""
    rng = random.Random(5)
    scores, labels = [], []
    for i in range(N):
        country = "XX" if i % 100 == 99 else rng.choice(COUNTRIES)
        fraud = rng.random() < (0.5 if country == "BR" else 0.01)
        prod = rng.random()
        inputs = {
            "amount": round(rng.uniform(1, 900), 2),
            "card_age_days": rng.randint(0, 3000),
            "is_foreign": rng.random() < 0.2,
            "country": country,
        }
        tx = f"tx-{i:05d}"
        scores.append(
            ScoreRecord(
                transaction_id=tx,
                request_id=f"r-{tx}",
                scored_at=T0 + i * 30.0,
                model_name="fraud",
                shadows=[],
                inputs=inputs,
                production=ProductionScore(
                    version="v1",
                    score=prod,
                    latency_ms=0.3,
                    decision=Decision.BLOCK if prod >= 0.9 else Decision.ALLOW,
                ),
            )
        )
        labels.append(label(tx, fraud, at=T0 + i * 30.0 + 2 * DAY))
    return scores, labels


@pytest.fixture
def registry(redis_client: redis.Redis, tmp_path: Path) -> ModelRegistry:
    """v1 in production; v2 knows where fraud comes from, v3 is pointed the wrong way."""
    registry = ModelRegistry(
        redis_client, FileArtifactStore(tmp_path / "artifacts"), policy=ApprovalPolicy()
    )
    for version, weights in (("v1", {}), ("v2", {"BR": 5.0}), ("v3", {"US": 5.0})):
        model = logistic_model(bias=-3.0, category_weights=weights or {"DE": 0.0})
        registry.register(model, make_manifest(model, version=version), actor="alice")
    registry.approve("fraud", "v1", actor="alice", reason="first", force=True)
    registry.promote("fraud", "v1", actor="alice")
    return registry


def test_a_replayed_candidate_is_judged_on_matured_traffic_and_the_policy_decides(
    registry: ModelRegistry,
    redis_url: str,
    kafka_bootstrap: str,
    make_topic: Callable[..., str],
    tmp_path: Path,
) -> None:
    topics = (make_topic("scores"), make_topic("labels"))
    scores, labels = _traffic()
    archive = tmp_path / "archive"
    write_archive(archive, scores, labels, batch=1000)
    env = {
        "SHADOWLINE_REDIS_URL": redis_url,
        "SHADOWLINE_ARTIFACT_DIR": str(tmp_path / "artifacts"),
        "SHADOWLINE_ARCHIVE_DIR": str(archive),
    }
    results = {}
    for version in ("v2", "v3"):
        out = CliRunner().invoke(app, ["replay", version, "--json"], env=env)
        assert out.exit_code == 0, out.output
        results[version] = json.loads(out.stdout)
        assert results[version]["read"] == N
        assert results[version]["refused"] == N // 100  # the XX payments, counted
        assert results[version]["refused_by_problem"] == {
            "country: 'XX' is not an allowed value (US, GB, DE, BR)": N // 100
        }
    better, _, production = pair_archive(archive, "v2", replay=True, model_name="fraud")
    worse, _, _ = pair_archive(archive, "v3", replay=True, model_name="fraud")
    assert production == "v1"
    assert len(better) == len(worse) == N - N // 100
    assert set(np.unique(better.label)) == {LEGIT, FRAUD}
    # The evidence from replay alone, with labels long matured: no live shadow needed.
    env["SHADOWLINE_KAFKA_BOOTSTRAP"] = kafka_bootstrap
    env["SHADOWLINE_SCORES_TOPIC"], env["SHADOWLINE_LABELS_TOPIC"] = topics
    env["SHADOWLINE_EVIDENCE_DIR"] = str(tmp_path / "evidence")
    for version in ("v2", "v3"):
        out = CliRunner().invoke(
            app, ["analyze", version, "--replay", "--record", "--json"], env=env
        )
        assert out.exit_code == 0, out.output
        results[version] = json.loads(out.stdout)
        assert results[version]["source"] == "replay"
        assert results[version]["matured_frauds"] >= 50
    assert results["v2"]["difference"] > 0.2  # about 0.37 against 0.09 with this seed
    assert results["v2"]["policy_violations"] == []
    assert results["v3"]["policy_violations"][0].startswith("rule non_inferiority: ")
    stored = registry.evidence("fraud", "v2", "replay")
    assert stored is not None
    assert stored.source == "replay"
    assert registry.evidence("fraud", "v2") is None  # nothing live was recorded
    registry.approve("fraud", "v2", actor="bob", reason="replayed on 33 hours of traffic")
    with pytest.raises(PolicyViolation, match=r"rule non_inferiority: "):
        registry.approve("fraud", "v3", actor="bob", reason="newer")


def test_replaying_the_same_range_again_replaces_its_output(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    from retrain.evidence.replay import replay

    scores, labels = _traffic()
    archive = tmp_path / "archive"
    write_archive(archive, scores, labels, batch=1000)
    first = replay(registry, "fraud", "v2", archive)
    again = replay(registry, "fraud", "v2", archive)
    assert (first.scored, again.scored) == (N - N // 100, N - N // 100)
    paired, sampling, _ = pair_archive(archive, "v2", replay=True)
    assert len(paired) == N - N // 100
    assert sampling.duplicates == 0
    assert sampling.errors == {"input": N // 100}


def test_a_time_range_and_inputs_of_mixed_kinds_are_replayed_row_by_row(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from retrain.evidence.replay import replay

    scores, labels = _traffic()
    # One file whose amount mixes numbers and text: checked row by row, the text refused.
    odd = [
        s.model_copy(update={"inputs": {**s.inputs, "amount": "12" if i % 2 else 12.0}})
        for i, s in enumerate(scores[:100])
    ]
    archive = tmp_path / "archive"
    write_archive(archive, odd + scores[100:], labels, batch=100)
    since = datetime.fromtimestamp(T0, UTC)
    until = datetime.fromtimestamp(T0 + 200 * 30.0, UTC)  # the first 200 transactions
    result = replay(registry, "fraud", "v2", archive, since=since, until=until)
    assert result.read == 200
    assert result.refused["amount: must be a number"] == 50
    # tx 199's country is refused too; tx 99's first problem is its amount.
    assert sum(result.refused.values()) == 51
    assert result.scored == 200 - 51
    paired, _, _ = pair_archive(archive, "v2", replay=True)
    assert len(paired) == result.scored


def test_replaying_an_empty_range_says_so(registry: ModelRegistry, tmp_path: Path) -> None:
    from retrain.errors import ArchiveError
    from retrain.evidence.replay import replay

    with pytest.raises(ArchiveError) as caught:
        replay(registry, "fraud", "v2", tmp_path)
    assert str(caught.value) == (
        f"the archive {tmp_path} holds no score records from the start to the end"
    )
