"""The OpenAPI document against the real server: Schemathesis (its own engine, every check),
with the admin token (every route) and without it (the admin routes), a bounded number of
examples per operation.

Afterwards the registry must be consistent: exactly one production version, and an audit
chain that verifies.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from registry import ModelRegistry, State
from service.app import create_app
from service.settings import ServiceSettings
from tests.service.helpers import ADMIN_TOKEN, make_production, register, wait_until
from tests.service.server import serving

LABELS_TOKEN = "labels-token-for-tests"
EXAMPLES = 5  # per operation in the fuzzing phase (the coverage phase is bounded by the schema)


@pytest.mark.parametrize("token", ["admin", "none", "labels"])
def test_the_server_keeps_its_openapi_promises(
    registry: ModelRegistry,
    make_settings: Callable[..., ServiceSettings],
    make_topic: Callable[..., str],
    tmp_path: Path,
    token: str,
) -> None:
    make_production(registry, "v1")
    register(registry, "v2", bias=-1.0)
    registry.shadow("fraud", "v2", rate=0.5, actor="test")
    settings = make_settings(labels_token=LABELS_TOKEN, labels_topic=make_topic("labels"))
    with serving(create_app(settings, registry)) as client:
        assert wait_until(lambda: client.get("/readyz").status_code == 200)
        command = [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{client.base_url}/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "1",
            "--request-timeout",
            "10",
            "--no-color",
        ]
        if token == "admin":
            command += ["--header", f"Authorization: Bearer {ADMIN_TOKEN}"]
        elif token == "labels":  # labels really written to a topic of this test's own
            command += ["--header", f"Authorization: Bearer {LABELS_TOKEN}"]
            command += ["--include-path-regex", "^/v1/labels"]
            # A label time may not be later than now: the document's maximum is the bound when
            # the server started, so a time just above it is valid seconds later and this one
            # check cannot hold. test_labels.py names every refused label instead.
            command += ["--exclude-checks", "negative_data_rejection"]
        else:  # the other routes answer the same either way: the run above covers them
            command += ["--include-path-regex", "^/admin"]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 0, result.stdout[:8000] + result.stderr[-3000:]
    production = [s for s in registry.list("fraud") if s.state is State.PRODUCTION]
    assert len(production) == 1, production
    assert registry.verify_audit("fraud").ok
