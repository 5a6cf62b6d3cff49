"""The Shadowline Grafana dashboard, built in code from :mod:`shadowline.panels`.

Design: one function turns each panel of ``shadowline.panels.ROWS`` into a Grafana panel with
the foundation SDK (refIds A, B, ... on its queries, the provisioned Prometheus datasource by
uid), laid out row by row.  The JSON is committed under ``deploy/grafana/dashboards/``, which
Grafana's file provisioning loads; tests check that it is what this module writes now and that
every query runs on a real Prometheus scraping a real scorer.

    python -m shadowline.dashboards --out deploy/grafana/dashboards   (make dashboards)
"""

from __future__ import annotations

import argparse
import json
import string
import sys
from collections.abc import Sequence
from pathlib import Path

from grafana_foundation_sdk.builders import common, dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_model
from grafana_foundation_sdk.models import dashboard as model

from shadowline.panels import ROWS, Panel

# The uid deploy/grafana/provisioning/datasources/prometheus.yml gives the datasource.
DATASOURCE_UID = "prometheus"
DATASOURCE = model.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)


def _thresholds(spec: Panel) -> dashboard.ThresholdsConfig:
    """Colour steps; without any, one neutral step (Grafana's default turns 80 red)."""
    if not spec.thresholds:
        steps = [model.Threshold(value=None, color="blue")]
    else:
        # Below the first step: green, unless reaching that step is the good news (reachable).
        base = "red" if spec.thresholds[0][1] == "green" else "green"
        steps = [model.Threshold(value=None, color=base)]
        steps += [model.Threshold(value=value, color=color) for value, color in spec.thresholds]
    return dashboard.ThresholdsConfig().mode(model.ThresholdsMode.ABSOLUTE).steps(steps)


def _visual(spec: Panel) -> timeseries.Panel | stat.Panel:
    """A time series (legend below, every series in the tooltip) or a last-value stat."""
    if spec.kind == "timeseries":
        return (
            timeseries.Panel()
            .legend(
                common.VizLegendOptions()
                .display_mode(common_model.LegendDisplayMode.LIST)
                .placement(common_model.LegendPlacement.BOTTOM)
                .show_legend(True)
            )
            .tooltip(
                common.VizTooltipOptions()
                .mode(common_model.TooltipDisplayMode.MULTI)
                .sort(common_model.SortOrder.DESCENDING)
            )
        )
    return (
        stat.Panel()
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .graph_mode(common_model.BigValueGraphMode.NONE)
        .color_mode(common_model.BigValueColorMode.VALUE)
        .text_mode(common_model.BigValueTextMode.AUTO)
    )


def _panel(spec: Panel, panel_id: int) -> Builder[model.Panel]:
    """The SDK panel for ``spec``: its queries get refIds A, B, ... (Grafana needs them)."""
    built = (
        _visual(spec)
        .id(panel_id)
        .title(spec.title)
        .description(spec.description)
        .unit(spec.unit)
        .datasource(DATASOURCE)
        .span(spec.width)
        .height(8)
        .thresholds(_thresholds(spec))
    )
    if spec.no_value is not None:
        built = built.no_value(spec.no_value)
    for ref_id, query in zip(string.ascii_uppercase, spec.queries, strict=False):
        target = (
            prometheus.Dataquery()
            .expr(query.expr)
            .legend_format(query.legend)
            .ref_id(ref_id)
            .datasource(DATASOURCE)
        )
        built = built.with_target(target.instant() if spec.kind == "stat" else target.range())
    return built


def build() -> dict[str, model.Dashboard]:
    """Every dashboard, by the file name it is written to."""
    board = (
        dashboard.Dashboard("Shadowline")
        .uid("shadowline")
        .description("Fraud scorer, shadow models, score records and the retrain worker.")
        .tags(["shadowline"])
        .refresh("30s")
        .time("now-1h", "now")
        .timezone("browser")
        .readonly()
    )
    panel_id = 0
    for title, panels in ROWS:
        panel_id += 1
        board = board.with_row(dashboard.Row(title).id(panel_id))
        for spec in panels:
            panel_id += 1
            board = board.with_panel(_panel(spec, panel_id))
    return {"shadowline.json": board.build()}


def render(board: model.Dashboard) -> str:
    """The dashboard as the JSON text Grafana loads (stable key order, newline at the end)."""
    return json.dumps(board, cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def write(out: Path) -> list[Path]:
    """Write every dashboard into ``out`` (created if needed); returns the files written.

    Raises ``NotADirectoryError`` naming ``out`` when it exists and is not a folder.
    """
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, board in build().items():
        path = out / name
        path.write_text(render(board))
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m shadowline.dashboards --out DIR``: write the dashboards; 1 on a bad ``--out``."""
    parser = argparse.ArgumentParser(
        prog="python -m shadowline.dashboards", description="Write the Grafana dashboards."
    )
    parser.add_argument("--out", type=Path, required=True, help="folder for the JSON files")
    args = parser.parse_args(argv)
    try:
        written = write(args.out)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":  # pragma: no cover - the module's command line
    sys.exit(main())
