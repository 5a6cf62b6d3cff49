"""Fixtures of the deployment checks: the kustomizations rendered once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.deploy.kustomize import Doc
from tests.deploy.manifests import kustomize_tree, render_all


@pytest.fixture(scope="session")
def kube_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A renderable copy of deploy/kubernetes (with a filled-in secrets.env)."""
    return kustomize_tree(tmp_path_factory.mktemp("kube"))


@pytest.fixture(scope="session")
def rendered(kube_tree: Path) -> dict[str, list[Doc]]:
    """``{"base" | "overlays/production" | "platform": resources}``."""
    return render_all(kube_tree)
