"""Loading a model: the session follows the manifest, golden examples replay, errors name why."""

from __future__ import annotations

import pytest

from registry.manifest import InputSchema
from service.errors import ModelLoadError
from service.models import load_model
from tests.factories import DEFAULT_SCHEMA, logistic_model, make_manifest
from tests.service.helpers import build


def test_loaded_model_scores_like_its_golden_examples() -> None:
    model = build("v7")
    golden = model.manifest.golden_examples
    scores = model.score([example.inputs for example in golden])
    assert scores.tolist() == pytest.approx([e.expected_score for e in golden], abs=1e-6)
    assert model.ref == "fraud:v7"
    one = [model.run_one(model.encode([example.inputs])) for example in golden]
    assert one == pytest.approx(scores.tolist(), abs=1e-6)
    assert all(type(score) is float for score in one)
    assert model.decide(0.95).value == "block"
    assert repr(model).startswith("LoadedModel(fraud:v7, sha256=")


def test_garbage_artifact_is_refused_with_the_reason() -> None:
    manifest = make_manifest(logistic_model())
    with pytest.raises(ModelLoadError, match=r"^cannot load model fraud:v1: onnxruntime cannot"):
        load_model(manifest, b"not an onnx graph")


def test_graph_inputs_must_match_the_manifest() -> None:
    numeric_only = InputSchema(fields=DEFAULT_SCHEMA.numeric)
    manifest = make_manifest(logistic_model())  # declares a categorical input too
    model = logistic_model(numeric_only, weights=[0.001] * 4)
    with pytest.raises(ModelLoadError) as info:
        load_model(manifest, model)
    assert str(info.value) == (
        "cannot load model fraud:v1: graph inputs ['numeric'] do not match the manifest's "
        "['categorical', 'numeric']"
    )


def test_output_name_must_exist() -> None:
    model = logistic_model()
    manifest = make_manifest(model, output={"name": "label"})
    with pytest.raises(ModelLoadError) as info:
        load_model(manifest, model)
    assert str(info.value) == (
        "cannot load model fraud:v1: graph has no output 'label' (has ['probability'])"
    )


def test_golden_examples_that_score_differently_are_refused() -> None:
    manifest = make_manifest(logistic_model(bias=-2.0))
    other = logistic_model(bias=1.0)
    with pytest.raises(ModelLoadError, match=r"golden example 0 scored 0\.\d+, expected 0\.\d+"):
        load_model(manifest, other)


def test_the_package_exports_its_public_names_lazily() -> None:
    import service

    assert service.load_model is load_model
    assert set(service.__all__) == {
        "Components",
        "LoadedModel",
        "ModelLoader",
        "ModelSource",
        "Scorer",
        "ServiceError",
        "ServiceSettings",
        "create_app",
        "load_model",
    }
    with pytest.raises(AttributeError, match="module 'service' has no attribute 'nope'"):
        _ = service.nope
