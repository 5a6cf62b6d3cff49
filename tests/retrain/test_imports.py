"""retrain/ imports only registry/ of ours (DESIGN.md), and its CLI module stays light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "retrain"
FORBIDDEN = ("service", "loadtest", "shadowline")
TRAINING = (
    "pandas", "lightgbm", "sklearn", "matplotlib", "croniter", "onnxmltools", "pyarrow", "duckdb",
)  # fmt: skip


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_retrain_never_imports_service_loadtest_or_the_command() -> None:
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(_imported(path) & set(FORBIDDEN))
        for path in PACKAGE.rglob("*.py")
    }
    assert {name: found for name, found in offenders.items() if found} == {}
    # The evidence subpackage is covered too (it is where analysis lives).
    assert "evidence/comparison.py" in offenders


def test_importing_the_cli_loads_no_training_library() -> None:
    # The scorer image has none of these (they are the `retrain` extra); onnx it has.
    code = (
        f"TRAINING = {TRAINING!r}; "
        "import sys, retrain.cli, retrain.settings, retrain.evidence.archive_cli; "
        "print(sorted(m for m in TRAINING if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_evidence_logic_does_no_io() -> None:
    # Comparison and statistics take decoded records; Kafka, Redis and files stay in the I/O
    # modules, so the statistics are tested (and simulated) without any service.
    io = {"kafka", "redis", "socket", "duckdb", "confluent_kafka"}
    pure = [PACKAGE / "evidence" / "comparison.py"]
    assert {p.name: sorted(_imported(p) & io) for p in pure} == {p.name: [] for p in pure}
