"""The exported graph: the contract's inputs, preprocessing inside, parity with the native model."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest

from registry import validate_model
from registry.contract import RowCodec
from retrain.constants import PARITY_TOLERANCE
from retrain.encoding import UNKNOWN, FeatureEncoder
from retrain.errors import ParityError
from retrain.export import OUTPUT, export_onnx
from retrain.features import add_features, filter_rows
from retrain.registration import Candidate, build_manifest, choose_thresholds, golden_examples
from retrain.schema import MODEL_SCHEMA
from retrain.scoring import score_frame
from retrain.steps import check_parity
from retrain.synthetic import EPOCH, SyntheticSource
from retrain.training import LightGBMTrainer, Matrix, Scores, TrainedModel


@pytest.fixture(scope="module")
def trained() -> tuple[pd.DataFrame, FeatureEncoder, TrainedModel]:
    as_of = EPOCH + timedelta(weeks=4)
    raw = SyntheticSource(seed=5, rows_per_week=5000).load(EPOCH, as_of)
    clean, _ = filter_rows(raw, as_of, 0)
    frame = add_features(clean)
    encoder = FeatureEncoder.fit(frame)
    model = LightGBMTrainer(n_trees=20, num_leaves=15, learning_rate=0.2).fit(
        encoder.transform(frame), frame["label"].to_numpy(np.int8), encoder.feature_names
    )
    return frame, encoder, model


def test_the_graph_follows_the_convention_and_matches_the_native_model(
    trained: tuple[pd.DataFrame, FeatureEncoder, TrainedModel],
) -> None:
    frame, encoder, model = trained
    artifact = export_onnx(model, encoder)
    graph = onnx.load_model_from_string(artifact).graph
    assert [i.name for i in graph.input] == ["numeric", "categorical"]
    assert [o.name for o in graph.output] == ["probability"]
    assert {n.domain for n in graph.node} <= {"", "ai.onnx.ml"}
    assert "LabelEncoder" in {n.op_type for n in graph.node}
    scored = score_frame(artifact, MODEL_SCHEMA, OUTPUT, frame)
    assert scored.accepted.all()
    native = model.predict(encoder.transform(frame))
    assert float(np.abs(scored.scores - native).max()) <= PARITY_TOLERANCE


def test_unknown_and_missing_values_are_handled_inside_the_graph(
    trained: tuple[pd.DataFrame, FeatureEncoder, TrainedModel],
) -> None:
    frame, encoder, model = trained
    rows = frame.iloc[:3].copy()
    rows["card_country"] = "ZZ"  # never seen in training
    rows["device_age_days"] = np.nan  # optional input left out
    assert (encoder.transform(rows)[:, 8 + 3] == UNKNOWN).all()
    artifact = export_onnx(model, encoder)
    scored = score_frame(artifact, MODEL_SCHEMA, OUTPUT, rows)
    native = model.predict(encoder.transform(rows))
    assert np.abs(scored.scores - native).max() <= PARITY_TOLERANCE


@dataclass(frozen=True)
class _Skewed:
    """A model whose native scores drift from its graph: what parity exists to catch."""

    inner: TrainedModel

    def predict(self, features: Matrix) -> Scores:
        return self.inner.predict(features) + 0.01

    def to_onnx(self, n_features: int) -> onnx.ModelProto:
        return self.inner.to_onnx(n_features)

    def save(self, path: Path) -> None:
        self.inner.save(path)


def test_parity_fails_naming_the_difference(
    trained: tuple[pd.DataFrame, FeatureEncoder, TrainedModel],
) -> None:
    frame, encoder, model = trained
    skewed = _Skewed(model)
    graph = score_frame(export_onnx(skewed, encoder), MODEL_SCHEMA, OUTPUT, frame).scores
    with pytest.raises(ParityError) as caught:
        check_parity(graph, skewed.predict(encoder.transform(frame)))
    assert str(caught.value) == (
        f"ONNX parity check failed: max abs diff {caught.value.max_abs_diff:.3g} > 0.0001 "
        "(first at evaluation row 0)"
    )
    assert caught.value.max_abs_diff == pytest.approx(0.01, abs=1e-4)


def test_the_manifest_passes_registry_validation_with_golden_examples(
    trained: tuple[pd.DataFrame, FeatureEncoder, TrainedModel],
) -> None:
    frame, encoder, model = trained
    artifact = export_onnx(model, encoder)
    scores = score_frame(artifact, MODEL_SCHEMA, OUTPUT, frame).scores
    thresholds = choose_thresholds(scores, block=0.005, review=0.02)
    assert (scores >= thresholds.block).mean() == pytest.approx(0.005, abs=0.001)
    golden = golden_examples(frame, scores)
    assert len(golden) == 12
    candidate = Candidate(
        name="fraud",
        version="v1",
        run_id="r1",
        code_version="git:abc",
        trainer="lightgbm",
        window_start=EPOCH,
        window_end=EPOCH,
        data_fingerprint="f" * 64,
        parent_version=None,
    )
    manifest = build_manifest(candidate, thresholds, {"roc_auc": 0.9, "note": None}, golden, "")
    assert manifest.metrics == {"roc_auc": 0.9}
    validate_model(artifact, manifest)  # raises when the contract is not met
    codec = RowCodec(MODEL_SCHEMA)
    assert all(codec.check(example.inputs) == [] for example in golden)
