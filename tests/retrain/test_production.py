"""Evaluation against production models trained elsewhere, with other input schemas."""

from __future__ import annotations

import json
from collections.abc import Callable

from registry import ModelRegistry, State
from registry.manifest import FieldType, InputField, InputSchema
from retrain.runner import Runner
from tests.factories import DEFAULT_SCHEMA, logistic_model, make_manifest


def _promote(registry: ModelRegistry, model: bytes, schema: InputSchema) -> None:
    registry.register(model, make_manifest(model, version="ext1", schema=schema), actor="bob")
    registry.approve("fraud", "ext1", actor="bob", reason="bring your own", force=True)
    registry.promote("fraud", "ext1", actor="bob")


def test_a_production_model_that_refuses_every_row_is_reported_and_not_compared(
    make_runner: Callable[..., Runner], model_registry: ModelRegistry
) -> None:
    _promote(model_registry, logistic_model(DEFAULT_SCHEMA), DEFAULT_SCHEMA)
    result = make_runner().run()
    assert result.outcome == "succeeded", result.reason
    evaluation = json.loads((result.folder / "evaluate" / "evaluation.json").read_text())
    assert evaluation["production_note"] == (
        "production fraud:ext1 accepts no evaluation row (row 0: is_foreign: is required)"
    )
    assert set(evaluation["models"]) == {"candidate"}
    gates = json.loads((result.folder / "gates" / "gates.json").read_text())
    assert gates["reason"] == (
        f"{evaluation['production_note']}: candidate evaluated alone, no comparison gate"
    )
    assert model_registry.manifest("fraud", result.run_id).lineage.parent_version == "ext1"


def test_production_is_compared_on_the_rows_it_accepts(
    make_runner: Callable[..., Runner], model_registry: ModelRegistry
) -> None:
    schema = InputSchema(
        fields=(
            InputField(name="amount", type=FieldType.FLOAT, minimum=0),
            InputField(
                name="card_country", type=FieldType.CATEGORICAL, allowed=("US", "GB", "DE", "FR")
            ),
        )
    )
    _promote(model_registry, logistic_model(schema, weights=[0.002], bias=-6.0), schema)
    result = make_runner().run()
    evaluation = json.loads((result.folder / "evaluate" / "evaluation.json").read_text())
    assert set(evaluation["models"]) == {"candidate", "production"}
    assert evaluation["rows_refused_by_production"] > 0
    assert evaluation["rows_compared"] == evaluation["models"]["production"]["overall"]["rows"]
    assert "country=US" in evaluation["models"]["production"]["slices"]
    assert "country=NL" not in evaluation["models"]["production"]["slices"]
    # An amount-only model is far weaker than the candidate: the gates pass.
    assert result.outcome == "succeeded", result.reason
    assert model_registry.state("fraud", result.run_id) is State.SHADOW
