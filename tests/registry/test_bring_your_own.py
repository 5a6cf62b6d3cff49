"""Models trained outside Shadowline register as their exporters wrote them.

A scikit-learn pipeline over a pandas frame with named columns (one input per column: double,
int64, bool and strings), LightGBM and XGBoost over one float matrix, and a ZipMap output:
each registers without editing its graph, and the stored artifact (the graph with its input
adapter) scores the golden rows as the graph itself does, fed in its own layout.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import redis

from registry import (
    AlreadyRegistered,
    FileArtifactStore,
    ModelRegistry,
    State,
    ValidationFailed,
)
from registry.artifacts import sha256_hex
from registry.layouts import SUPPORTED_LAYOUTS
from registry.manifest import InputSchema, Manifest, OutputSpec, Scalar
from tests.exported_models import (
    FRAME_SCHEMA,
    MATRIX_SCHEMA,
    PROBABILITIES,
    float16_input,
    golden_rows,
    lightgbm_matrix,
    manifest_for,
    margin_model,
    native_scores,
    sklearn_per_column,
    xgboost_matrix,
)

ZIPMAP = OutputSpec(name="output_probability", column=1)
CASES = {
    "sklearn-per-column": (sklearn_per_column, FRAME_SCHEMA, "per-column (6 inputs)"),
    "lightgbm-matrix": (lightgbm_matrix, MATRIX_SCHEMA, "single-tensor (input 'input')"),
    "xgboost-matrix": (xgboost_matrix, MATRIX_SCHEMA, "single-tensor (input 'features')"),
}


def _register(
    registry: ModelRegistry, model: bytes, schema: InputSchema, output: OutputSpec, version: str
) -> Manifest:
    rows = golden_rows()
    manifest = manifest_for(model, schema, rows, version=version, output=output)
    return registry.register(model, manifest, actor="outside-team")


@pytest.mark.parametrize("case", list(CASES))
def test_an_exported_model_registers_as_it_is(registry: ModelRegistry, case: str) -> None:
    export, schema, layout = CASES[case]
    model, output = export(), PROBABILITIES
    stored = _register(registry, model, schema, output, "v1")
    assert registry.state("fraud", "v1") is State.REGISTERED
    artifact = registry.artifact("fraud", "v1")
    assert stored.sha256 == sha256_hex(artifact)
    assert stored.lineage.source_sha256 == sha256_hex(model)
    assert stored.lineage.source_layout == layout
    inputs = {i.name: i for i in onnx.load_model_from_string(artifact).graph.input}
    assert sorted(inputs) == sorted(n for n in ("numeric", "categorical") if n in _packed(schema))
    # The stored graph, fed the packed inputs, scores every golden row as the exported graph.
    rows = golden_rows(40, offset=50)
    ours = native_scores(artifact, schema, rows, output)
    theirs = native_scores(model, schema, rows, output)
    assert np.abs(ours - theirs).max() <= 1e-5


def _packed(schema: InputSchema) -> set[str]:
    return {"numeric"} | ({"categorical"} if schema.categorical else set())


def test_the_file_as_given_is_kept_in_the_artifact_store(
    registry: ModelRegistry, store: FileArtifactStore
) -> None:
    model = sklearn_per_column()
    stored = _register(registry, model, FRAME_SCHEMA, PROBABILITIES, "v1")
    source = str(stored.lineage.source_sha256)
    assert store.get(source) == model
    # The same file again is a no-op; the stored (composed) artifact again too.
    assert _register(registry, model, FRAME_SCHEMA, PROBABILITIES, "v1") == stored
    composed = registry.artifact("fraud", "v1")
    again = registry.register(composed, stored, actor="outside-team")
    assert again == stored
    with pytest.raises(AlreadyRegistered):
        _register(registry, lightgbm_matrix(), MATRIX_SCHEMA, PROBABILITIES, "v1")
    # A manifest may give the sha256 of the file as given (or of the composed graph).
    manifest = manifest_for(model, FRAME_SCHEMA, golden_rows(), version="v2", output=PROBABILITIES)
    named = registry.register(model, manifest.model_copy(update={"sha256": source}), actor="x")
    assert named.sha256 == stored.sha256
    with pytest.raises(ValidationFailed) as caught:
        registry.register(
            model, manifest.model_copy(update={"version": "v3", "sha256": "0" * 64}), actor="x"
        )
    assert str(caught.value) == (
        f"model fraud:v3 refused: the manifest's sha256 {'0' * 64} is not the artifact's sha256 "
        f"{source}"
    )


def test_a_zipmap_output_is_read_as_its_probability_tensor(registry: ModelRegistry) -> None:
    model = sklearn_per_column(zipmap=True)
    stored = _register(registry, model, FRAME_SCHEMA, ZIPMAP, "v1")
    assert stored.lineage.source_layout == (
        "per-column (6 inputs), ZipMap output 'output_probability' read as its tensor"
    )
    artifact = registry.artifact("fraud", "v1")
    [value] = [
        o for o in onnx.load_model_from_string(artifact).graph.output if o.name == ZIPMAP.name
    ]
    assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    rows = golden_rows(40, offset=100)
    ours = native_scores(artifact, FRAME_SCHEMA, rows, ZIPMAP)
    theirs = native_scores(model, FRAME_SCHEMA, rows, ZIPMAP)
    assert np.abs(ours - theirs).max() <= 1e-5


def test_bad_models_are_refused_and_nothing_is_written(
    registry: ModelRegistry, redis_client: redis.Redis, store: FileArtifactStore
) -> None:
    model = sklearn_per_column()
    good = manifest_for(model, FRAME_SCHEMA, golden_rows(), version="v1", output=PROBABILITIES)
    renamed = InputSchema(
        fields=tuple(
            f.model_copy(update={"name": "amount"}) if f.name == "amount_usd" else f
            for f in FRAME_SCHEMA.fields
        )
    )
    mismatched = good.model_copy(
        update={
            "input_schema": renamed,
            "golden_examples": tuple(
                e.model_copy(update={"inputs": _rename(e.inputs, "amount_usd", "amount")})
                for e in good.golden_examples
            ),
        }
    )
    with pytest.raises(ValidationFailed) as caught:
        registry.register(model, mismatched, actor="outside-team")
    assert str(caught.value) == (
        "model fraud:v1 refused: graph input 'amount_usd' has no manifest field of that name "
        "(rename the field 'amount'?); manifest field 'amount' has no graph input (each field "
        "needs one, named as the field)"
    )
    # An output that is not a probability (here 10 p + 1.5, like a margin).
    with pytest.raises(ValidationFailed) as caught:
        registry.register(margin_model(model), good, actor="outside-team")
    assert caught.value.problems[0].startswith("golden example 0: score ")
    assert caught.value.problems[0].endswith(" is outside [0, 1]")
    with pytest.raises(ValidationFailed) as caught:
        registry.register(float16_input(model, "amount_usd"), good, actor="outside-team")
    assert caught.value.problems == (
        "graph input 'amount_usd' has element type tensor(float16), which Shadowline cannot "
        "feed (float, double, int64, int32, bool or string)",
        SUPPORTED_LAYOUTS,
    )
    assert redis_client.dbsize() == 0
    assert not store.root.exists() or not any(store.root.rglob("*"))


def _rename(row: dict[str, Scalar], old: str, new: str) -> dict[str, Scalar]:
    return {new if key == old else key: value for key, value in row.items()}
