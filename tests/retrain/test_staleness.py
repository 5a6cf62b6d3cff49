"""The staleness experiment runs end to end and reports per simulated month."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retrain.staleness import format_table
from shadowline.cli import app


def test_staleness_reports_stale_and_fresh_metrics_per_month(
    in_tmp_cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in {"TRAIN_WEEKS": "3", "N_TREES": "15", "LABEL_MATURITY_DAYS": "14"}.items():
        monkeypatch.setenv(f"SHADOWLINE_{key}", value)
    result = CliRunner().invoke(
        app, ["retrain", "staleness", "--months", "2", "--rows-per-week", "2000", "--json"]
    )
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    assert [row["month"] for row in table] == [1, 2]
    assert [row["start"] for row in table] == ["2026-02-23", "2026-03-23"]
    first, second = table
    assert first["stale"] == first["fresh"]  # month 1: the same model
    assert set(first["loss"].values()) == {0.0}
    assert second["frauds"] > 0
    assert second["loss"]["roc_auc"] == pytest.approx(
        second["fresh"]["roc_auc"] - second["stale"]["roc_auc"], abs=1e-4
    )
    text = format_table(table)
    assert text.splitlines()[0].startswith("month  start       frauds  ROC-AUC stale/fresh")
    assert len(text.splitlines()) == 3
