"""Whole runs against a real Redis and the real model registry."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from registry import ModelRegistry, State
from retrain.constants import STEPS
from retrain.records import RunStore
from retrain.runner import Runner
from retrain.settings import RetrainSettings
from tests.factories import DEFAULT_SCHEMA, logistic_model, make_manifest


def test_a_run_ends_with_a_shadow_model_with_full_lineage(
    make_runner: Callable[..., Runner], model_registry: ModelRegistry
) -> None:
    runner = make_runner()
    result = runner.run()
    assert result.outcome == "succeeded", result.reason
    version = result.run_id
    assert result.reason == f"fraud:{version} in shadow at rate 1"
    assert [s.name for s in result.steps] == list(STEPS)
    assert model_registry.state("fraud", version) is State.SHADOW
    assert model_registry.deployment("fraud").shadows == {version: 1.0}
    manifest = model_registry.manifest("fraud", version)
    lineage = manifest.lineage
    assert lineage.pipeline_run_id == version
    assert lineage.code_version
    assert lineage.training_window_start is not None
    assert lineage.training_window_start.isoformat() == "2026-02-02T00:00:00+00:00"
    assert lineage.training_window_end is not None
    assert lineage.training_window_end.isoformat() == "2026-03-02T00:00:00+00:00"
    ingest = json.loads((result.folder / "ingest" / "done.json").read_text())
    assert lineage.data_fingerprint == ingest["summary"]["data_fingerprint"]
    assert lineage.parent_version is None
    assert lineage.trainer == "lightgbm"
    assert len(manifest.golden_examples) >= 10
    assert manifest.thresholds.review <= manifest.thresholds.block
    assert manifest.metrics["offline_block_rate_target"] == 0.005
    assert 0.5 < manifest.metrics["offline_roc_auc"] <= 1.0
    # The run record in Redis tells the same story.
    record = RunStore(runner.runs.client).get(version)
    assert record is not None
    assert record.outcome == "succeeded"
    assert [s["step"] for s in record.steps] == list(STEPS)
    assert runner.metrics.value("succeeded") == 1.0
    # No production model: the candidate was evaluated alone, and the report says so.
    gates = json.loads((result.folder / "gates" / "gates.json").read_text())
    assert gates["reason"] == "no production model: candidate evaluated alone, no comparison gate"
    page = (result.folder / "report" / "report.html").read_text()
    assert "no production model" in page
    assert page.count("data:image/png;base64,") == 5
    figures = json.loads((result.folder / "report" / "figures.json").read_text())
    assert set(figures) == {"score_distribution", "roc", "pr", "slices", "reliability"}


def test_a_second_run_on_unchanged_data_is_skipped_as_identical(
    make_runner: Callable[..., Runner],
) -> None:
    runner = make_runner()
    first = runner.run()
    second = runner.run()
    assert second.outcome == "skipped"
    fingerprint = json.loads((first.folder / "ingest" / "done.json").read_text())["output"]
    assert second.reason == (
        f"identical to run {first.run_id}: same data (fingerprint {fingerprint[:12]}), "
        f"settings, code and production model; fraud:{first.run_id} is already registered"
    )
    assert [s.name for s in second.steps] == ["ingest"]
    assert runner.metrics.value("skipped") == 1.0


def test_a_candidate_worse_than_production_is_registered_then_rejected_with_the_reason(
    make_runner: Callable[..., Runner],
    make_settings: Callable[..., RetrainSettings],
    model_registry: ModelRegistry,
) -> None:
    first = make_runner().run()
    assert first.outcome == "succeeded", first.reason
    model_registry.approve("fraud", first.run_id, actor="alice", reason="test", force=True)
    model_registry.promote("fraud", first.run_id, actor="alice")
    # A stump cannot match production's recall at production's block rate.
    weak = make_runner(make_settings(n_trees=1, num_leaves=2, gate_tolerance=0.0))
    result = weak.run()
    assert result.outcome == "rejected"
    state = model_registry.state("fraud", result.run_id)
    assert state is State.REJECTED
    assert result.reason.startswith(f"fraud:{result.run_id} rejected: gate failed (tolerance 0):")
    assert "overall: confidently worse: recall " in result.reason
    audit = model_registry.audit("fraud")
    assert audit[-1].reason == result.reason.split(" rejected: ", 1)[1]
    manifest = model_registry.manifest("fraud", result.run_id)
    assert manifest.lineage.parent_version == first.run_id
    evaluation = json.loads((result.folder / "evaluate" / "evaluation.json").read_text())
    assert set(evaluation["models"]) == {"candidate", "production"}
    assert evaluation["block_rate_source"] == f"production fraud:{first.run_id} block rate"
    assert result.exit_code == 3
    assert weak.metrics.value("rejected") == 1.0


def test_a_missing_column_fails_the_run_naming_file_and_column(
    make_runner: Callable[..., Runner],
    make_settings: Callable[..., RetrainSettings],
    tmp_path: Path,
) -> None:
    data = tmp_path / "export"
    data.mkdir()
    (data / "2026-03.csv").write_text("transaction_id,card_id\nt1,c1\n")
    runner = make_runner(make_settings(data_source=str(data)))
    result = runner.run()
    assert result.outcome == "failed"
    assert result.reason == "step ingest: 2026-03.csv: column 'merchant_id' is missing"
    assert result.exit_code == 1
    assert runner.metrics.value("failed") == 1.0
    record = RunStore(runner.runs.client).get(result.run_id)
    assert record is not None
    assert (record.outcome, record.reason) == ("failed", result.reason)
    assert record.steps == [
        {"step": "ingest", "status": "failed", "seconds": pytest.approx(record.steps[0]["seconds"])}
    ]


def test_resume_reuses_finished_steps_and_redoes_a_damaged_one(
    make_runner: Callable[..., Runner],
) -> None:
    runner = make_runner()
    first = runner.run(until="export")
    assert first.outcome == "succeeded"
    assert first.reason == "stopped after 'export'"
    # Damage the train step's output: resume must notice and redo train.  Training is
    # deterministic, so the redone output hashes as before and export is reused.
    (first.folder / "train" / "encoder.json").write_text("{}")
    resumed = runner.run(resume=first.run_id, until="parity")
    statuses = {s.name: s.status for s in resumed.steps}
    assert statuses == {
        "ingest": "reused",
        "filter": "reused",
        "features": "reused",
        "sets": "reused",
        "train": "ran",
        "export": "reused",
        "parity": "ran",
    }
    # Re-running one step alone keeps the same fingerprint when nothing upstream changed.
    before = json.loads((first.folder / "features" / "done.json").read_text())
    again = runner.step(first.run_id, "features")
    assert again.status == "ran"
    assert again.fingerprint == before["fingerprint"]


def test_a_registry_refusal_fails_the_run_with_the_registry_message(
    make_runner: Callable[..., Runner], model_registry: ModelRegistry
) -> None:
    runner = make_runner()
    first = runner.run(until="report")
    # Someone registered another artifact under this run's version in the meantime.
    other = logistic_model(DEFAULT_SCHEMA)
    model_registry.register(other, make_manifest(other, version=first.run_id), actor="bob")
    resumed = runner.run(resume=first.run_id)
    assert resumed.outcome == "failed"
    ours = hashlib.sha256((first.folder / "export" / "model.onnx").read_bytes()).hexdigest()
    theirs = hashlib.sha256(other).hexdigest()
    assert resumed.reason == (
        f"step register: model fraud:{first.run_id} is already registered with artifact "
        f"{theirs[:12]}; this artifact is {ours[:12]} (register it under a new version)"
    )
    assert [s.status for s in resumed.steps] == ["reused"] * 10


def test_old_run_folders_are_pruned(
    make_runner: Callable[..., Runner], make_settings: Callable[..., RetrainSettings]
) -> None:
    runner = make_runner(make_settings(keep_runs=1))
    first = runner.run(until="ingest")
    second = runner.run(until="ingest")
    assert not first.folder.exists()
    assert (second.folder / "ingest" / "done.json").is_file()
    assert [p.name for p in second.folder.parent.iterdir()] == [second.run_id]
