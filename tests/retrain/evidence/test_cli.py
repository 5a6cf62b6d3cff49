"""Scores + late labels -> evidence -> approval, with the real broker, Redis and the commands.

Score records are built as the scorer writes them (``registry.records.ScoreRecord`` JSON on the
scores topic); labels go through ``shadowline labels send``; ``shadowline analyze --record``
stores the evidence; ``approve`` without ``--force`` then passes for the better challenger and
is refused, naming the rule, for the worse one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner, Result

from registry import ApprovalPolicy, FileArtifactStore, ModelRegistry, PolicyViolation
from registry.records import encode
from shadowline.cli import app
from shadowline.stack import free_port
from tests.factories import logistic_model, make_manifest
from tests.retrain.evidence.records import label, produce, traffic

Run = Callable[..., Result]
TRANSACTIONS = 1200  # above the default policy's 1000 shadow records


@pytest.fixture
def topics(make_topic: Callable[..., str]) -> tuple[str, str]:
    return make_topic("scores", partitions=2), make_topic("labels")


@pytest.fixture
def run(in_tmp_cwd: Path, redis_url: str, kafka_bootstrap: str, topics: tuple[str, str]) -> Run:
    """``shadowline <args>`` with settings pointing at the test Redis, broker and topics."""
    env = {
        "SHADOWLINE_REDIS_URL": redis_url,
        "SHADOWLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SHADOWLINE_SCORES_TOPIC": topics[0],
        "SHADOWLINE_LABELS_TOPIC": topics[1],
        "SHADOWLINE_ARTIFACT_DIR": str(in_tmp_cwd / "artifacts"),
        "SHADOWLINE_MODEL_NAME": "fraud",
    }

    def invoke(*args: str, **overrides: str) -> Result:
        changed = {f"SHADOWLINE_{key.upper()}": value for key, value in overrides.items()}
        return CliRunner().invoke(app, list(args), env={**env, **changed})

    return invoke


@pytest.fixture
def registry(redis_client: redis.Redis, in_tmp_cwd: Path) -> ModelRegistry:
    """The registry the commands use (default approval policy), with v1 in production and
    v2, v3 in shadow."""
    registry = ModelRegistry(
        redis_client, FileArtifactStore(in_tmp_cwd / "artifacts"), policy=ApprovalPolicy()
    )
    for n, version in enumerate(("v1", "v2", "v3")):
        model = logistic_model(bias=-2.0 - n / 10)
        registry.register(model, make_manifest(model, version=version), actor="alice")
    registry.approve("fraud", "v1", actor="alice", reason="first model", force=True)
    registry.promote("fraud", "v1", actor="alice")
    registry.shadow("fraud", "v2", rate=1.0, actor="alice")
    registry.shadow("fraud", "v3", rate=1.0, actor="alice")
    return registry


def _ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def _error(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result.stderr


def _labels_file(folder: Path, transactions: int) -> Path:
    _, labels = traffic(transactions, {})
    path = folder / "labels.jsonl"
    path.write_text("".join(label.model_dump_json() + "\n" for label in labels))
    return path


def test_evidence_from_scores_and_late_labels_gates_approval(
    run: Run, registry: ModelRegistry, kafka_bootstrap: str, topics: tuple[str, str]
) -> None:
    scores, _ = traffic(TRANSACTIONS, {"v2": 3, "v3": 1})
    values: list[tuple[str, bytes | None]] = [(s.transaction_id, encode(s)) for s in scores]
    values.insert(10, ("tx-bad", b'{"transaction_id": "tx-bad"}'))
    produce(kafka_bootstrap, topics[0], values)

    # Before any label: the label-free signals, and why no labeled comparison is possible.
    early = _ok(run("analyze", "v2", "--record"))
    assert "label-free, 1200 compared of 1200 sampled:" in early
    assert (
        "no labeled comparison yet: none of the 1200 compared transactions is matured yet: the "
        "oldest is" in early
    )
    assert "rule min_matured_frauds: 0 labeled frauds" in early
    stored = registry.evidence("fraud", "v2")
    assert stored is not None
    assert stored.challenger_value is None
    assert stored.label_free is not None
    assert stored.label_free.transactions == 1200

    labels = _labels_file(Path.cwd(), TRANSACTIONS)
    future = '{"transaction_id": "tx-00001", "is_fraud": true, "label_time": 4102444800}\n'
    with_future = labels.with_name("future.jsonl")
    with_future.write_text(labels.read_text() + future)
    from_file = _error(run("labels", "send", "--file", str(with_future)))
    assert "line 1201: label_time: 2100-01-01T00:00:00Z is in the future" in from_file
    sent = run("labels", "send", "--file", str(labels))
    assert _ok(sent) == f"sent 1200 labels (60 fraud) to {topics[1]}\n"
    # One written past the intake's check (another producer): the analysis refuses it too.
    late = label("tx-00001", True, at=4102444800.0)
    produce(kafka_bootstrap, topics[1], [("tx-00001", encode(late))])

    good = run("analyze", "v2", "--record", "--json")
    data = json.loads(_ok(good))
    assert "invalid ScoreRecord: request_id: Field required" in good.stderr
    assert (
        "warning: refused 1 label(s) dated after the analysis time (in the future): tx-00001"
        in good.stderr
    )
    assert (data["shadow_records"], data["matured_records"], data["matured_frauds"]) == (
        1200,
        1200,
        60,
    )
    assert data["production_version"] == "v1"
    # Production blocks 42 (30 frauds, 12 legitimate); the challenger has 57 tied at its top
    # score (45 frauds), so it blocks 42/57 of each.
    assert data["challenger_value"] == pytest.approx(45 * 42 / 57 / 60)
    assert data["production_value"] == pytest.approx(0.5)
    assert data["difference_ci"]["low"] < data["difference"] < data["difference_ci"]["high"]
    assert data["decision_low"] > -0.02
    assert data["maturity"]["window_from"] == "curve"
    assert data["policy_violations"] == []
    assert data["refused_labels"]["after_analysis_time"] == ["tx-00001"]
    assert len(data["bad_records"]) == 1
    evidence = registry.evidence("fraud", "v2")
    assert evidence is not None
    assert data["recorded"] == evidence.ref
    assert Path(evidence.report).read_text().startswith("<!doctype html>")
    assert (Path(evidence.report).parent / "evidence.json").is_file()
    entry = registry.audit("fraud")[-1]
    assert (entry.action, entry.actor, entry.version) == ("evidence", "shadow-analysis", "v2")
    assert entry.evidence == evidence.ref
    assert registry.evidence_looks("fraud", "v2", "live", "v1") == 1

    registry.approve("fraud", "v2", actor="bob", reason="catches more fraud in shadow")
    assert registry.state("fraud", "v2").value == "approved"

    worse = _ok(run("analyze", "v3", "--record"))
    assert "fraud caught at production's block rate" in worse
    assert (
        "approval policy: rule non_inferiority: fraud_caught_at_block_rate differs by -0.2500"
        in worse
    )
    recorded = registry.evidence("fraud", "v3")
    assert recorded is not None
    assert f"recorded {recorded.ref} for fraud:v3 (actor shadow-analysis)" in worse
    with pytest.raises(PolicyViolation) as refused:
        registry.approve("fraud", "v3", actor="bob", reason="newer")
    assert str(refused.value).startswith(
        "cannot approve model fraud:v3: rule non_inferiority: fraud_caught_at_block_rate "
        "differs by -0.2500 (challenger minus production); its lower bound at 97.50% (1 look(s))"
    )
    assert _error(run("models", "approve", "v3", "--reason", "newer")) == (
        f"error: {refused.value}\n"
    )


def test_analysis_of_unknown_versions_and_bad_label_files(
    run: Run, registry: ModelRegistry, in_tmp_cwd: Path, topics: tuple[str, str]
) -> None:
    assert _error(run("analyze", "v9")) == "error: model fraud:v9 is not registered\n"
    bad = in_tmp_cwd / "labels.csv"
    bad.write_text("transaction_id,is_fraud,label_time\ntx-1,true,1\ntx-2,sometimes,2\n")
    assert _error(run("labels", "send", "-f", str(bad))) == (
        f"error: label file {bad} has 1 bad line(s): line 3: is_fraud: Input should be a valid "
        "boolean, unable to interpret input\n"
    )
    # Nothing from the file was sent: the labels topic is still empty.
    empty = json.loads(_ok(run("analyze", "v2", "--json")))
    assert (empty["shadow_records"], empty["labeled_records"]) == (0, 0)
    assert empty["why_undefined"] == "v2 was never scored in shadow in the records read"
    assert empty["policy_violations"][0].startswith("rule min_shadow_records: 0 compared")
    good = in_tmp_cwd / "good.csv"
    good.write_text("transaction_id,is_fraud,label_time,source\ntx-1,1,1,review\ntx-2,0,2,\n")
    sent = json.loads(_ok(run("labels", "send", "-f", str(good), "--json", "--source", "feed")))
    assert sent == {"sent": 2, "frauds": 1, "topic": topics[1]}


def test_missing_topics_and_bad_settings(run: Run, registry: ModelRegistry) -> None:
    missing = _error(run("analyze", "v2", labels_topic="gone"))
    assert missing.startswith("error: topic gone does not exist on Kafka at 127.0.0.1:")
    no_redis = _error(run("analyze", "v2", redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    assert no_redis.startswith("error: Redis: Error 111 connecting to 127.0.0.1:")
    bad = run("labels", "send", "-f", "labels.jsonl", kafka_bootstrap="nope")
    assert bad.exit_code == 2
    assert bad.stderr == (
        "error: invalid settings for EvidenceSettings: SHADOWLINE_KAFKA_BOOTSTRAP='nope': Value "
        "error, 'nope' is not host:port (comma-separate several)\n"
    )


def test_labels_send_allows_the_clock_skew_of_the_settings(run: Run, in_tmp_cwd: Path) -> None:
    ahead = in_tmp_cwd / "ahead.jsonl"
    ahead.write_text(
        json.dumps({"transaction_id": "tx-1", "is_fraud": True, "label_time": time.time() + 120})
    )
    refused = _error(run("labels", "send", "-f", str(ahead), evidence_clock_skew_s="10"))
    assert "line 1: label_time: " in refused
    assert "is in the future (now " in refused
    assert refused.endswith("; clock skew allowed 10 s)\n")
