"""The compose file, the Kubernetes manifests and the Dockerfile set only SHADOWLINE_*
variables that the settings class of the process reading them defines, and every $(VAR) a
manifest builds a value from is defined before it."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest

from registry.config import load_settings
from service.settings import ServiceSettings
from tests.deploy.kustomize import Doc
from tests.deploy.manifests import (
    PENDING,
    REFERENCE,
    ROOT,
    SETTINGS_OF,
    Container,
    compose_services,
    containers,
    find,
    variables,
)


def _expand(value: str, env: dict[str, str]) -> str:
    return REFERENCE.sub(lambda match: env.get(match.group(1), match.group(0)), value)


def _unknown(container: Container) -> list[str]:
    ours = [name for name in container.names if name.startswith("SHADOWLINE_")]
    if not ours:
        return []
    assert container.name in SETTINGS_OF, (
        f"{container.where} sets {sorted(ours)} but no settings class is known for it"
    )
    known = variables(SETTINGS_OF[container.name]) | set(PENDING)
    return sorted(set(ours) - known)


def test_pending_variables_are_not_settings_yet() -> None:
    every = set().union(*(variables(cls) for cls in SETTINGS_OF.values()))
    landed = sorted(set(PENDING) & every)
    assert not landed, f"{landed} are settings now: delete them from PENDING in manifests.py"


def test_compose_sets_only_known_variables() -> None:
    services = compose_services()
    checked = 0
    for service in services:
        assert not _unknown(service), f"{service.where} sets unknown {_unknown(service)}"
        checked += sum(name.startswith("SHADOWLINE_") for name in service.names)
    assert checked >= 10


@pytest.mark.parametrize("kustomization", ["base", "overlays/production"])
def test_manifests_set_only_known_variables(
    rendered: dict[str, list[Doc]], kustomization: str
) -> None:
    found = containers(rendered[kustomization])
    assert {c.name for c in found} == {"scorer", "retrain-worker", "archiver"}
    for container in found:
        assert not _unknown(container), f"{container.where} sets unknown {_unknown(container)}"
        defined: set[str] = set()
        for name in container.names:
            for ref in REFERENCE.findall(container.values.get(name, "")):
                assert ref in defined, f"{container.where}: {name} uses $({ref}) before it is set"
            defined.add(name)


def test_the_scorer_image_sets_only_known_variables() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    names = set(re.findall(r"\b(SHADOWLINE_[A-Z0-9_]+)=", dockerfile))
    assert names
    assert names <= variables(ServiceSettings)


@pytest.mark.parametrize("kustomization", ["base", "overlays/production"])
def test_each_process_starts_with_its_manifest_environment(
    rendered: dict[str, list[Doc]],
    kustomization: str,
    in_tmp_cwd: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The settings class of every container loads from exactly the environment the manifest
    gives it (ConfigMap, literal values, $(VAR) expanded, the Secret's values): a setting the
    validators require in production cannot be missing from one Deployment."""
    docs = rendered[kustomization]
    secret = {
        key: base64.b64decode(value).decode()
        for key, value in find(rendered["overlays/production"], "Secret", "shadowline-secrets")[
            "data"
        ].items()
    }
    for container in containers(docs):
        env = dict(container.values)
        for name, key in container.secrets.items():
            env[name] = secret[key]
        for name in container.names:  # in definition order, as the kubelet expands them
            env[name] = _expand(env[name], env)
        with monkeypatch.context() as patch:
            for name in [n for n in os.environ if n.startswith("SHADOWLINE_")]:
                patch.delenv(name)
            for name, value in env.items():
                if name.startswith("SHADOWLINE_"):
                    patch.setenv(name, value)
            settings = load_settings(SETTINGS_OF[container.name])
        assert settings.environment.value == "production", container.where
