"""The committed dashboards are the generated ones, every query is well formed, and every
``shadowline_*`` metric a query names is one the scorer or the retrain worker exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from retrain.metrics import RetrainMetrics
from service.metrics import ServiceMetrics
from shadowline import dashboards
from shadowline import panels as panels_module

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deploy/grafana/dashboards"
METRIC = re.compile(r"\bshadowline_[a-z0-9_]+")
# Sample names each metric type exposes (prometheus_client's family name is without _total).
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_count", "_sum")}


def panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel that shows data (rows are layout only)."""
    return [panel for panel in board["panels"] if panel["type"] != "row"]


def committed() -> dict[str, dict[str, Any]]:
    return {path.name: json.loads(path.read_text()) for path in COMMITTED.glob("*.json")}


def exported() -> dict[str, set[str]]:
    """Per metric of the scorer and the retrain worker, the sample names it can expose."""
    registry = CollectorRegistry()
    ServiceMetrics(registry)
    RetrainMetrics(registry)
    return {
        family.name: {family.name + suffix for suffix in SUFFIXES[family.type]}
        for family in registry.collect()
    }


def used() -> set[str]:
    """Every ``shadowline_*`` name the committed dashboards query."""
    return {
        name
        for board in committed().values()
        for panel in panels(board)
        for target in panel["targets"]
        for name in METRIC.findall(target["expr"])
    }


def test_committed_json_is_what_the_generator_writes(tmp_path: Path) -> None:
    written = dashboards.write(tmp_path)
    assert sorted(path.name for path in written) == sorted(committed())
    for path in written:
        assert (COMMITTED / path.name).read_text() == path.read_text(), (
            f"{path.name} differs from the generator's output: run `make dashboards`"
        )


def test_every_panel_has_well_formed_prometheus_queries() -> None:
    boards = committed()
    assert boards
    for board in boards.values():
        assert len(panels(board)) >= 20
        ids = [panel["id"] for panel in board["panels"]]
        assert len(ids) == len(set(ids)), "panel ids must be unique"
        for panel in panels(board):
            targets = panel.get("targets") or []
            assert targets, f"{panel['title']}: no query"
            ref_ids = [target.get("refId") for target in targets]
            assert all(ref_ids), f"{panel['title']}: a query without refId"
            assert len(set(ref_ids)) == len(ref_ids), f"{panel['title']}: refIds repeat"
            for target in targets:
                assert target["expr"].strip(), f"{panel['title']}: empty expr"
                assert target["datasource"]["uid"] == dashboards.DATASOURCE_UID
                # rate() over a fixed window shorter than a few scrapes draws gaps.
                for window in re.findall(r"(?:rate|increase)\([^\[]+\[([^\]]+)\]", target["expr"]):
                    assert window in {"$__rate_interval", "7d"}, f"{panel['title']}: [{window}]"


def test_every_metric_in_a_query_exists_in_the_code() -> None:
    names = set().union(*exported().values())
    assert "shadowline_request_duration_seconds_bucket" in names
    assert "shadowline_retrain_runs_total" in names
    assert len(used()) >= 25
    assert not used() - names, f"exported by no process: {sorted(used() - names)}"


def test_every_exported_metric_is_on_a_panel() -> None:
    missing = [family for family, names in exported().items() if not names & used()]
    assert not missing, f"metrics on no panel: {missing}"


def test_grafana_provisioning_loads_the_committed_folder() -> None:
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/shadowline.yml").read_text()
    )
    [source] = provider["providers"]
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    assert mounts["./deploy/grafana/dashboards"] == source["options"]["path"]
    datasources = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert [ds["uid"] for ds in datasources["datasources"]] == [dashboards.DATASOURCE_UID]


def test_command_line_writes_the_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "new" / "dashboards"
    assert dashboards.main(["--out", str(out)]) == 0
    assert capsys.readouterr().out.split() == [str(out / "shadowline.json")]
    board = json.loads((out / "shadowline.json").read_text())
    assert board["uid"] == "shadowline"


def test_command_line_refuses_an_out_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "file.json"
    target.write_text("{}")
    assert dashboards.main(["--out", str(target)]) == 1
    assert capsys.readouterr().err.strip() == f"error: --out {target}: exists and is not a folder"


def test_time_panels_convert_unix_seconds_to_milliseconds() -> None:
    # The gauges hold unix seconds; Grafana's dateTime units read epoch milliseconds (without
    # the factor, "Loaded models" showed load times of 1970).
    timed = [
        panel for _, row in panels_module.ROWS for panel in row if panel.unit.startswith("dateTime")
    ]
    assert timed
    for panel in timed:
        assert all(query.expr.endswith("* 1000") for query in panel.queries), panel.title


def label_names() -> set[str]:
    """Every label name the scorer's and the worker's metrics carry, plus Prometheus's own."""
    registry = CollectorRegistry()
    metrics = [*vars(ServiceMetrics(registry)).values(), *vars(RetrainMetrics(registry)).values()]
    names = {"le", "instance", "job"}
    for metric in metrics:
        names.update(getattr(metric, "_labelnames", ()))  # prometheus_client keeps them here
    return names


def test_every_label_a_query_or_legend_uses_exists() -> None:
    # Prometheus accepts a label no metric has (`by (path)` is one empty group, `path!="x"`
    # matches everything), so a renamed label would go unnoticed without this.
    known = label_names()
    assert {"route", "status", "role", "version", "kind", "outcome"} <= known
    for board in committed().values():
        for panel in panels(board):
            for target in panel["targets"]:
                expr, legend = target["expr"], target.get("legendFormat", "")
                used_labels = {
                    label.strip()
                    for group in re.findall(r"\bby \(([^)]*)\)", expr)
                    for label in group.split(",")
                }
                used_labels |= set(re.findall(r"[{,]\s*([a-z_]+)\s*(?:=~|!~|!=|=)", expr))
                used_labels |= set(re.findall(r"\{\{\s*([a-z_]+)\s*\}\}", legend))
                unknown = used_labels - known
                assert not unknown, f"{panel['title']}: labels no metric has: {sorted(unknown)}"
