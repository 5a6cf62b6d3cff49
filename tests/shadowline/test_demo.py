"""`shadowline demo` end to end: real stack, real pipeline, real scorer, real topic."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from shadowline.cli import app

runner = CliRunner()


def test_demo_trains_promotes_shadows_serves_and_reads_back(
    in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small data so the two training runs take seconds; the subcommands inherit these.
    monkeypatch.setenv("SHADOWLINE_SYNTHETIC_ROWS_PER_WEEK", "4000")
    monkeypatch.setenv("SHADOWLINE_N_TREES", "20")
    try:
        result = runner.invoke(app, ["demo"])
        output = result.output
        assert result.exit_code == 0, output
        assert "$ shadowline models promote r" in output
        # Printed commands can be pasted into a shell: the reason is quoted.
        assert "--force --reason 'demo: first production model (no earlier model" in output
        assert output.count("POST /v1/score demo-") == 5
        assert output.count(": 200 score=") == 5
        assert (
            "with a bad row: 422 ['amount: must be >= 0 (got -5)', 'hour: must be a number']"
            in (output)
        )
        records = [line for line in output.splitlines() if ": production r" in line]
        assert len(records) == 5
        challenger = output.split("== training a challenger", 1)[1].split("==", 1)[0]
        assert "in shadow at rate 1" in challenger, challenger
        assert all(" shadows: r" in line for line in records), records
    finally:
        runner.invoke(app, ["stack", "down"])
