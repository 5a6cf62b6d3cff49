"""The JSON result of a run and its latency-over-time plot."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest import Payload, Recorder, RunConfig, build_result, parse_target, plot_timelines


def test_result_counts_rates_and_failures() -> None:
    rec = Recorder()
    for ms in (1.0, 2.0, 3.0):
        rec.response(ms / 1000, ms / 1000, 200, "valid", True, 0)
    rec.response(0.004, 0.004, 500, "valid", False, 1)
    rec.error("timeout", 1)
    rec.send_lag(0.0002)
    rec.cpu_s = 0.0001
    cfg = RunConfig(
        target=parse_target("http://127.0.0.1:9"),
        payloads=(Payload(kind="valid", path="/", body=b"{}"),),
        rate=2.5,
        duration_s=2.0,
    )
    result = build_result(cfg, rec, 2.1)
    assert result["requests"] == 5
    assert (result["completed"], result["failed"]) == (4, 2)
    assert result["rate_achieved"] == 2.0
    assert result["by_status"] == {"200": 3, "500": 1}
    assert result["errors"] == {"timeout": 1}
    assert result["generator"]["behind_max_ms"] == 0.2
    assert result["generator"]["cpu_us_per_request"] == 20.0  # 100 us over 5 requests
    assert [t["failed"] for t in result["timeline"]] == [0, 2]
    json.dumps(result)  # JSON-able as is


def test_plot_with_events_and_failures_is_a_png(tmp_path: Path) -> None:
    timeline = [
        {"second": 0, "completed": 10, "failed": 0, "p50_ms": 1.0, "p99_ms": 2.0, "max_ms": 3.0},
        {"second": 1, "completed": 9, "failed": 1, "p50_ms": 1.5, "p99_ms": 9.0, "max_ms": 9.5},
    ]
    path = tmp_path / "plot.png"
    plot_timelines({"a": timeline}, path, "title", marks=[(0.5, "promoted v2")])
    assert path.read_bytes()[:4] == b"\x89PNG"
