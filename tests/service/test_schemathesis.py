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
from tests.service.conftest import ADMIN_TOKEN, make_production, register, wait_until
from tests.service.server import serving

EXAMPLES = 5  # per operation in the fuzzing phase (the coverage phase is bounded by the schema)


@pytest.mark.parametrize("token", [True, False], ids=["admin-token", "no-token"])
def test_the_server_keeps_its_openapi_promises(
    registry: ModelRegistry,
    make_settings: Callable[..., ServiceSettings],
    tmp_path: Path,
    token: bool,
) -> None:
    make_production(registry, "v1")
    register(registry, "v2", bias=-1.0)
    registry.shadow("fraud", "v2", rate=0.5, actor="test")
    with serving(create_app(make_settings(), registry)) as client:
        assert wait_until(lambda: client.get("/readyz").status_code == 200)
        command = [
            str(Path(sys.executable).parent / "schemathesis"), "run",
            f"{client.base_url}/openapi.json", "--checks", "all",
            "--max-examples", str(EXAMPLES), "--seed", "1", "--request-timeout", "10",
            "--no-color",
        ]  # fmt: skip
        if token:
            command += ["--header", f"Authorization: Bearer {ADMIN_TOKEN}"]
        else:  # the other routes answer the same either way: the run above covers them
            command += ["--include-path-regex", "^/admin"]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=300, cwd=tmp_path,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
    assert result.returncode == 0, result.stdout[-20000:] + result.stderr[-3000:]
    production = [s for s in registry.list("fraud") if s.state is State.PRODUCTION]
    assert len(production) == 1, production
    assert registry.verify_audit("fraud").ok
