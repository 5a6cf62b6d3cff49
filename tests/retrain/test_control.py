"""A control run: production's recipe retrained with another seed, shadowed, never approved
unforced (real Redis, the real registry, real training on the small synthetic data)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from registry import ModelRegistry, PolicyViolation, State
from registry.manifest import Lineage, Manifest
from retrain.control import control_settings, plan_control
from retrain.errors import ControlError
from retrain.export import OUTPUT
from retrain.gates import apply_gates
from retrain.runner import Runner
from retrain.schema import MODEL_SCHEMA
from retrain.scoring import score_frame
from retrain.settings import RetrainSettings
from shadowline.cli import app
from tests.factories import logistic_model, make_manifest


def _promote(registry: ModelRegistry, version: str) -> None:
    registry.approve("fraud", version, actor="alice", reason="first model", force=True)
    registry.promote("fraud", version, actor="alice")


def _scores(registry: ModelRegistry, version: str, rows: pd.DataFrame) -> np.ndarray:
    scored = score_frame(registry.artifact("fraud", version), MODEL_SCHEMA, OUTPUT, rows)
    return np.asarray(scored.scores)


def test_a_control_retrains_productions_recipe_with_another_seed_and_is_never_approved(
    make_runner: Callable[..., Runner],
    make_settings: Callable[..., RetrainSettings],
    model_registry: ModelRegistry,
) -> None:
    first = make_runner().run()
    assert first.outcome == "succeeded", first.reason
    _promote(model_registry, first.run_id)
    # The worker's settings have moved on since; the control follows production's recipe.
    runner = make_runner(make_settings(n_trees=5, train_weeks=2, training_seed=9))
    result = runner.run(control=True)
    assert result.outcome == "succeeded", result.reason
    version = result.run_id
    assert result.reason == (
        f"fraud:{version} in shadow at rate 1 (control of fraud:{first.run_id}, seed 2)"
    )
    production = model_registry.manifest("fraud", first.run_id).lineage
    control = model_registry.manifest("fraud", version)
    assert control.lineage.control_of == first.run_id
    assert (production.seed, control.lineage.seed) == (1, 2)
    assert control.lineage.recipe == production.recipe
    assert production.recipe is not None
    assert production.recipe["n_trees"] == 30
    assert production.recipe["as_of"] == "2026-03-30T00:00:00+00:00"
    assert control.lineage.training_window_start == production.training_window_start
    assert control.lineage.training_window_end == production.training_window_end
    assert control.lineage.data_fingerprint == production.data_fingerprint
    assert control.description.startswith(f"Control of fraud:{first.run_id} (its recipe, seed 2)")
    assert model_registry.state("fraud", version) is State.SHADOW
    assert version in model_registry.deployment("fraud").shadows

    # Another seed: other scores, the same quality on the same evaluation rows.
    rows = pd.read_parquet(result.folder / "sets" / "eval.parquet")
    mine, theirs = (
        _scores(model_registry, version, rows),
        _scores(model_registry, first.run_id, rows),
    )
    assert float(np.abs(mine - theirs).max()) > 1e-3
    offline = model_registry.manifest("fraud", first.run_id).metrics
    assert abs(control.metrics["offline_roc_auc"] - offline["offline_roc_auc"]) < 0.05
    gates = json.loads((result.folder / "gates" / "gates.json").read_text())
    assert gates["passed"], gates["reason"]
    assert gates["applied"] is False
    assert gates["reason"].startswith("not applied to a control, which measures the noise floor")
    overall = gates["checks"][0]  # recall: the paired interval cannot tell them apart
    assert overall["low"] <= 0.0 <= overall["high"]

    rule = (
        f"rule not_a_control: it is a control of {first.run_id} (production's recipe retrained "
        "with another seed, shadowed to measure the noise floor), not a candidate for production"
    )
    assert model_registry.approval_violations("fraud", version)[0] == rule
    with pytest.raises(PolicyViolation) as refused:
        model_registry.approve("fraud", version, actor="alice", reason="looks good")
    assert str(refused.value).startswith(f"cannot approve model fraud:{version}: {rule}; ")
    model_registry.approve("fraud", version, actor="alice", reason="on purpose", force=True)
    assert rule in model_registry.audit("fraud")[-1].detail


def test_a_control_the_gates_would_reject_still_goes_to_shadow(
    make_runner: Callable[..., Runner],
    model_registry: ModelRegistry,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The real gates, on evaluation rows where the newcomer blocks nothing (recall 0): a
    # candidate is rejected; a control goes to shadow with the verdict beside it.
    first = make_runner().run()
    _promote(model_registry, first.run_id)

    def blocking_nothing(evaluation: Any, columns: Any, settings: RetrainSettings) -> Any:
        nothing = np.zeros_like(columns.candidate_blocks)
        return apply_gates(
            evaluation, dataclasses.replace(columns, candidate_blocks=nothing), settings
        )

    monkeypatch.setattr("retrain.steps.apply_gates", blocking_nothing)
    candidate = make_runner().run(as_of=datetime(2026, 4, 6, tzinfo=UTC))
    assert candidate.outcome == "rejected"
    assert "gate failed" in candidate.reason
    control = make_runner().run(control=True)
    assert control.outcome == "succeeded", control.reason
    assert model_registry.state("fraud", control.run_id) is State.SHADOW
    gates = json.loads((control.folder / "gates" / "gates.json").read_text())
    assert (gates["passed"], gates["applied"]) == (True, False)
    assert (
        "(would fail: gate failed (tolerance 0.02): overall: confidently worse" in gates["reason"]
    )
    page = (control.folder / "report" / "report.html").read_text()
    assert "Gates: reported, not applied (a control)" in page


def test_a_control_needs_a_production_model_with_a_recipe(
    make_runner: Callable[..., Runner], model_registry: ModelRegistry
) -> None:
    runner = make_runner()
    with pytest.raises(ControlError) as caught:
        runner.run(control=True)
    assert str(caught.value) == (
        "no production model for fraud: a control retrains production's recipe"
    )
    model = logistic_model()
    model_registry.register(model, make_manifest(model, version="ext1"), actor="bob")
    _promote(model_registry, "ext1")
    with pytest.raises(ControlError) as caught:
        runner.run(control=True)
    assert str(caught.value) == (
        "production fraud:ext1 records no recipe in its lineage (trained outside the retrain "
        "pipeline, or before recipes were recorded): a control cannot retrain it"
    )
    with pytest.raises(ControlError) as caught:
        runner.run(control=True, resume="r1")
    assert str(caught.value).startswith("a control run takes its as-of time from production's")


def test_seed_without_control_is_refused(in_tmp_cwd: Path) -> None:
    result = CliRunner().invoke(app, ["retrain", "run", "--seed", "3"])
    assert result.exit_code == 2
    assert result.stderr == (
        "error: --seed applies to --control runs (SHADOWLINE_TRAINING_SEED sets a run's seed)\n"
    )


def _production(**lineage: object) -> Manifest:
    """A production manifest whose lineage is ``lineage`` (the recipe of the small runs)."""
    model = logistic_model()
    return make_manifest(model, version="v1", lineage=Lineage.model_validate(lineage))


RECIPE = {
    "as_of": "2026-03-30T00:00:00+00:00",
    "train_weeks": 4,
    "eval_weeks": 2,
    "label_maturity_days": 14,
    "n_trees": 30,
}
WINDOW = {
    "training_window_start": datetime(2026, 2, 2, tzinfo=UTC),
    "training_window_end": datetime(2026, 3, 2, tzinfo=UTC),
}


def test_the_control_plan_takes_the_recipe_and_checks_seed_and_window(
    make_settings: Callable[..., RetrainSettings],
) -> None:
    settings = make_settings(n_trees=5, train_weeks=8)
    plan, as_of = plan_control(settings, _production(recipe=RECIPE, seed=4, **WINDOW), None)
    assert plan == {"control_of": "v1", "seed": 5, "recipe": RECIPE}
    assert as_of == datetime(2026, 3, 30, tzinfo=UTC)
    control = control_settings(settings, plan)
    assert (control.n_trees, control.train_weeks, control.training_seed) == (30, 4, 5)
    with pytest.raises(ControlError) as caught:
        plan_control(settings, _production(recipe=RECIPE, seed=4, **WINDOW), 4)
    assert str(caught.value) == "seed 4 is production fraud:v1's own seed: a control needs another"
    with pytest.raises(ControlError) as caught:
        plan_control(settings, _production(recipe=RECIPE, seed=4), None)
    assert str(caught.value) == (
        "production fraud:v1's recipe gives the training window 2026-02-02T00:00:00+00:00 to "
        "2026-03-02T00:00:00+00:00, but its lineage names none to none: a control would not "
        "see the same data"
    )
    with pytest.raises(ControlError) as caught:
        plan_control(settings, _production(recipe={**RECIPE, "n_trees": 0}, **WINDOW), None)
    assert str(caught.value) == (
        "production fraud:v1's recipe cannot be used: n_trees: Input should be greater than or "
        "equal to 1"
    )
    with pytest.raises(ControlError) as caught:
        plan_control(settings, _production(recipe={**RECIPE, "as_of": "soon"}, **WINDOW), None)
    assert str(caught.value) == (
        "production fraud:v1's recipe cannot be used: as_of: Invalid isoformat string: 'soon'"
    )
