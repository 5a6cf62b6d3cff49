"""Models as outside teams export them, through the real scorer (real Redis, real broker).

Each is registered without editing its graph, shadowed (its scores of the golden rows are on
the scores topic) and promoted (it answers ``POST /v1/score`` with them), all to 1e-5.  The
pandas pipeline goes the way a new user would: ``init-manifest``, ``register`` and ``shadow``
on the command line, approval and promotion through the admin API.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
from typer.testing import CliRunner

from registry import ModelRegistry
from registry.drafting import DraftOptions, draft_manifest
from registry.manifest import Manifest
from registry.sample import FieldOptions
from service.app import create_app
from service.settings import ServiceSettings
from shadowline.cli import app as command
from tests.exported_models import (
    lightgbm_matrix,
    sklearn_per_column,
    training_frame,
    xgboost_matrix,
)
from tests.factories import random_rows
from tests.service.helpers import ADMIN, make_production, wait_until
from tests.service.kafka_helpers import read_records
from tests.service.server import serving

TOLERANCE = 1e-5
# A row production (the factory's logistic model) accepts; the exported models' fields have
# other names, so one request carries both.
PRODUCTION_ROW = random_rows(n=1, seed=9)[0]
NUMBERS_ONLY = FieldOptions(exclude=("merchant_country", "channel", "device_os"))


def _shadow_scores_match(
    client: httpx.Client,
    manifests: list[Manifest],
    settings: ServiceSettings,
    kafka_bootstrap: str,
) -> None:
    """Send every golden row (with a production row) and check each shadow's recorded score."""
    expected: dict[str, tuple[str, float]] = {}
    for manifest in manifests:
        for i, example in enumerate(manifest.golden_examples):
            tid = f"{manifest.version}-{i}"
            body = {"transaction_id": tid, "features": {**PRODUCTION_ROW, **example.inputs}}
            assert client.post("/v1/score", json=body).status_code == 200
            expected[tid] = (manifest.version, example.expected_score)
    records = read_records(
        kafka_bootstrap,
        settings.scores_topic,
        until=lambda rs: set(expected) <= {r.transaction_id for r in rs},
    )
    seen = 0
    for record in records:
        if record.transaction_id not in expected:
            continue
        version, score = expected[record.transaction_id]
        [shadow] = [s for s in record.shadows if s.version == version]
        assert shadow.error is None, record
        assert shadow.score is not None, record
        assert abs(shadow.score - score) <= TOLERANCE, record
        seen += 1
    assert seen == len(expected)


def _promote_and_score(client: httpx.Client, manifest: Manifest) -> None:
    """Approve (forced: no shadow evidence here) and promote through the admin API, then score
    every golden row with POST /v1/score."""
    version = manifest.version
    approval = {"actor": "ana", "reason": "exported model", "force": True}
    assert client.post(f"/admin/models/{version}/approve", json=approval, headers=ADMIN).is_success
    promoted = client.post(f"/admin/models/{version}/promote", json={"actor": "ana"}, headers=ADMIN)
    assert promoted.json()["production"] == version
    first = {"transaction_id": "probe", "features": manifest.golden_examples[0].inputs}
    assert wait_until(
        lambda: client.post("/v1/score", json=first).json().get("model_version") == version
    )
    for i, example in enumerate(manifest.golden_examples):
        body = {"transaction_id": f"{version}-prod-{i}", "features": example.inputs}
        answer = client.post("/v1/score", json=body).json()
        assert answer["model_version"] == version
        assert abs(answer["score"] - example.expected_score) <= TOLERANCE, (i, answer)


def shadows_loaded(client: httpx.Client) -> int:
    """How many shadows the scorer's sidecar has loaded and scores with (its loads run beside
    the records: a request before that gets no entry for a shadow still loading)."""
    return sum(1 for shadow in client.get("/readyz").json()["shadows"] if shadow["loaded"])


def test_a_pandas_pipeline_from_init_manifest_to_production(
    registry: ModelRegistry,
    make_settings: Callable[..., ServiceSettings],
    kafka_bootstrap: str,
    redis_url: str,
    in_tmp_cwd: Path,
) -> None:
    make_production(registry, "v1")
    settings = make_settings()
    (in_tmp_cwd / "model.onnx").write_bytes(sklearn_per_column())
    training_frame().to_csv(in_tmp_cwd / "sample.csv", index=False)
    env = {"SHADOWLINE_REDIS_URL": redis_url, "SHADOWLINE_ARTIFACT_DIR": settings.artifact_dir}

    def shadowline(*args: str) -> str:
        result = CliRunner().invoke(command, ["models", *args], env=env)
        assert result.exit_code == 0, result.output
        return result.stdout

    shadowline("init-manifest", "model.onnx", "--sample", "sample.csv", "--version", "byo-1")
    shadowline("register", "model.onnx", "--manifest", "model.manifest.json")
    shadowline("shadow", "byo-1", "--rate", "1")
    manifest = registry.manifest("fraud", "byo-1")
    with serving(create_app(settings, registry)) as client:
        assert wait_until(lambda: shadows_loaded(client) == 1)
        _shadow_scores_match(client, [manifest], settings, kafka_bootstrap)
        _promote_and_score(client, manifest)


def test_exported_models_score_their_golden_rows_in_shadow_and_in_production(
    registry: ModelRegistry,
    make_settings: Callable[..., ServiceSettings],
    kafka_bootstrap: str,
) -> None:
    make_production(registry, "v1")
    frame = training_frame()
    exported = {
        "zipmap": (sklearn_per_column(zipmap=True), DraftOptions(version="zipmap")),
        "lightgbm": (lightgbm_matrix(), DraftOptions(version="lightgbm", fields=NUMBERS_ONLY)),
        "xgboost": (xgboost_matrix(), DraftOptions(version="xgboost", fields=NUMBERS_ONLY)),
    }
    manifests = []
    for model, options in exported.values():
        draft = draft_manifest(model, frame, options).manifest
        manifests.append(registry.register(model, draft, actor="outside-team"))
        registry.shadow("fraud", options.version, rate=1.0, actor="ana")
    settings = make_settings()
    with serving(create_app(settings, registry)) as client:
        assert wait_until(lambda: shadows_loaded(client) == len(exported))
        _shadow_scores_match(client, manifests, settings, kafka_bootstrap)
        for manifest in manifests:
            _promote_and_score(client, manifest)
