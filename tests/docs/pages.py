"""What each documentation page's examples assume, and what running them must leave behind.

A page whose runnable blocks ``tests/docs/test_examples.py`` runs has an entry in
:data:`PAGES`: the state its prose assumes (a production model with the pipeline's inputs, as
``make demo`` leaves; files a sentence names), whether a scorer must already be serving on the
documented port, settings the page names, how its JSON blocks are checked, and what the
session must have done (a registry state, a record with a shadow score).  Models are the tiny
logistic models of ``tests/factories.py`` over the pipeline's input schema; a page that trains
runs the pipeline with the retrain tests' small settings.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

from registry import ModelRegistry
from registry.manifest import FieldType, InputField, InputSchema
from registry.records import ScoreRecord
from retrain.schema import MODEL_SCHEMA
from tests.factories import logistic_model, make_manifest
from tests.lifecycle import NAME, production, register
from tests.retrain.helpers import SMALL

LABELS_TOKEN = "docs-labels-token"  # the test scorer's own, on 127.0.0.1
# The load generator's payloads: 30 float inputs f00 ... f29 (as `make bench` uses).
WIDE_SCHEMA = InputSchema(
    fields=tuple(InputField(name=f"f{i:02d}", type=FieldType.FLOAT) for i in range(30))
)


def _setting(value: object) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


# The pipeline at the retrain tests' small size: a run takes seconds, not minutes.
SMALL_PIPELINE = MappingProxyType(
    {f"SHADOWLINE_{key.upper()}": _setting(value) for key, value in SMALL.items()}
)


@dataclass(frozen=True)
class Done:
    """A page's session, finished: its folder, output and the registry it acted on."""

    cwd: Path
    stdout: str
    registry: ModelRegistry


@dataclass(frozen=True)
class Page:
    """What one page's examples need around them, and what they must achieve."""

    arrange: Callable[[ModelRegistry, Path], None] = lambda registry, cwd: None
    scorer: bool = False  # serving on the documented port before the first block
    env: Mapping[str, str] = field(default_factory=dict)
    json_block: Callable[[str], object] | None = None  # how each JSON block is checked
    check: Callable[[Done], None] = lambda done: None


def demo_production(registry: ModelRegistry, cwd: Path) -> None:
    """A production model with the inputs of the models ``make demo`` trains and promotes."""
    production(registry, "v1", schema=MODEL_SCHEMA)


def demo_production_and_shadow(registry: ModelRegistry, cwd: Path) -> None:
    demo_production(registry, cwd)
    register(registry, "v2", bias=-1.0, schema=MODEL_SCHEMA)
    registry.shadow(NAME, "v2", rate=1.0, actor="docs")


def demo_production_and_candidate(registry: ModelRegistry, cwd: Path) -> None:
    demo_production(registry, cwd)
    register(registry, "v2", bias=-1.0, schema=MODEL_SCHEMA)


def demo_production_and_files(registry: ModelRegistry, cwd: Path) -> None:
    """Production ``v1`` and, as files, the model ``v2`` that docs/models.md ends with."""
    demo_production(registry, cwd)
    model = logistic_model(MODEL_SCHEMA, bias=-1.0)
    (cwd / "model.onnx").write_bytes(model)
    manifest = make_manifest(model, version="v2", schema=MODEL_SCHEMA, with_sha=True)
    (cwd / "model.manifest.json").write_text(manifest.model_dump_json(indent=2))


def wide_production(registry: ModelRegistry, cwd: Path) -> None:
    production(registry, "v1", schema=WIDE_SCHEMA)


def _tour(done: Done) -> None:
    """The tour scored tour-1 with production v1 while its challenger scored it in shadow,
    promoted the challenger and rolled back to v1."""
    deployment = done.registry.deployment(NAME)
    assert deployment.production == "v1"
    states = {s.version: s.state.value for s in done.registry.list(NAME)}
    [challenger] = [v for v in states if v != "v1"]
    assert states[challenger] == "retired"
    shown = [line for line in done.stdout.splitlines() if "tour-1" in line]
    assert any(challenger in line for line in shown), done.stdout  # the shadow's score
    forced = [e for e in done.registry.audit(NAME) if e.action == "approve"]
    assert forced[-1].actor == "me"
    assert "forced" in forced[-1].detail or "force" in forced[-1].reason


def _registry_page(done: Done) -> None:
    states = {s.version: s.state.value for s in done.registry.list(NAME)}
    assert states == {"v1": "production", "v2": "retired", "v3": "shadow"}
    assert "fraud: audit log intact" in done.stdout


def _scoring_page(done: Done) -> None:
    assert done.registry.deployment(NAME).production == "v1"  # promoted v2, rolled back
    assert '"decision":"block"' in done.stdout or '"decision":"review"' in done.stdout


def _shadows_page(done: Done) -> None:
    assert done.registry.deployment(NAME).shadows == {"v2": 0.25}
    assert "tx-2001 v1 " in done.stdout  # the record, read back from the topic


def _retrain_page(done: Done) -> None:
    [candidate] = done.registry.list(NAME)
    assert candidate.state.value == "shadow"
    assert "succeeded" in done.stdout


def _loadtest_page(done: Done) -> None:
    result = json.loads((done.cwd / "result.json").read_text())
    assert result["failed"] == 0, result["errors"]
    assert result["by_status"].keys() >= {"200", "422"}
    assert (done.cwd / "latency.png").stat().st_size > 0
    assert json.loads((done.cwd / "max.json").read_text())["failed"] == 0


def _configuration_page(done: Done) -> None:
    assert "SHADOWLINE_PORT='eighty'" in done.stdout + (done.cwd / "page.err").read_text()
    assert "exit code 2" in done.stdout


def _evidence_page(done: Done) -> None:
    assert '"written":2' in done.stdout.replace(" ", "")


PAGES: dict[str, Page] = {
    "README.md": Page(arrange=demo_production, env=SMALL_PIPELINE, check=_tour),
    "docs/configuration.md": Page(check=_configuration_page),
    "docs/scoring.md": Page(arrange=demo_production_and_shadow, check=_scoring_page),
    "docs/registry.md": Page(arrange=demo_production_and_files, check=_registry_page),
    "docs/shadows.md": Page(
        arrange=demo_production_and_candidate,
        scorer=True,
        json_block=ScoreRecord.model_validate_json,
        check=_shadows_page,
    ),
    "docs/retrain.md": Page(env=SMALL_PIPELINE, check=_retrain_page),
    "docs/loadtest.md": Page(arrange=wide_production, scorer=True, check=_loadtest_page),
    "docs/evidence.md": Page(
        arrange=demo_production,
        scorer=True,
        env={"SHADOWLINE_LABELS_TOKEN": LABELS_TOKEN},
        check=_evidence_page,
    ),
}
