"""The compose file, the Kubernetes manifests and the Dockerfile set only SHADOWLINE_*
variables that the settings class of the process reading them defines, and every $(VAR) a
manifest builds a value from is defined before it."""

from __future__ import annotations

import re

import pytest

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
    variables,
)


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
