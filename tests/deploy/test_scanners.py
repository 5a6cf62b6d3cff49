"""The Dockerfile passes hadolint, and checkov (the infrastructure-as-code scanner) finds
nothing in the Dockerfile or in the rendered production manifests that is not skipped with a
written reason in the manifest itself.

Open-source checkov reports no severities (those come from its vendor's service, which these
tests never call: ``--skip-download``), so every failed check counts, whatever its severity.
checkov lives in an environment of its own (``make install`` makes ``.venv/tools/checkov``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.kustomize import Doc
from tests.deploy.manifests import ROOT

CHECKOV = ROOT / ".venv" / "tools" / "checkov" / "bin" / "checkov"
SCANNED = ("overlays/production", "platform")


def _tool(path: Path) -> str:
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: run `make install`")
    return str(path)


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = _tool(Path(sys.executable).parent / "hadolint")
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


@pytest.fixture(scope="module")
def checkov_report(
    rendered: dict[str, list[Doc]], tmp_path_factory: pytest.TempPathFactory
) -> list[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("checkov")
    for name in SCANNED:
        text = yaml.safe_dump_all(rendered[name], sort_keys=False)
        (folder / f"{name.replace('/', '-')}.yaml").write_text(text)
    shutil.copy(ROOT / "Dockerfile", folder / "Dockerfile")
    result = subprocess.run(
        [
            _tool(CHECKOV),
            "--directory",
            str(folder),
            "--framework",
            "kubernetes",
            "dockerfile",
            "--output",
            "json",
            "--compact",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    report = json.loads(result.stdout)
    return report if isinstance(report, list) else [report]


def test_checkov_scanned_the_manifests_and_the_dockerfile(
    checkov_report: list[dict[str, Any]],
) -> None:
    counts = {part["check_type"]: part["summary"] for part in checkov_report}
    assert set(counts) == {"kubernetes", "dockerfile"}
    assert counts["kubernetes"]["resource_count"] >= 20
    assert counts["kubernetes"]["parsing_errors"] == 0
    assert counts["dockerfile"]["passed"] > 0


def test_checkov_finds_nothing_left_unexplained(checkov_report: list[dict[str, Any]]) -> None:
    failed = [
        f"{check['check_id']} {check['resource']}: {check['check_name']}"
        for part in checkov_report
        for check in part["results"]["failed_checks"]
    ]
    assert failed == []
    for part in checkov_report:
        for check in part["results"]["skipped_checks"]:
            reason = check["check_result"].get("suppress_comment") or ""
            assert len(reason) > 20, f"{check['check_id']} on {check['resource']} has no reason"
