"""`make bench`'s harness end to end, shrunk to seconds: a 20-tree model, runs of 0.3 s, no
scorer.  Asserts that it completes and what it writes, never any number it measured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.affinity import pinned_plan
from benchmarks.run import main


@pytest.mark.slow
def test_the_bench_harness_runs_end_to_end_and_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "docs"
    args = [
        "--smoke",
        "--reps",
        "1",
        "--scorer",
        "off",
        "--no-profile",
        "--out",
        str(out),
        "--work",
        str(tmp_path / "work"),
    ]
    assert main(args) == 0
    text = (out / "benchmarks.md").read_text()
    assert "| shadows off: throughput vs naive | not run yet | not run yet | >= 3.0 |" in text
    assert "Scorer rows: **not run yet** (disabled with --scorer off)." in text
    results = json.loads((out / "bench" / "results.json").read_text())
    assert results["model"]["trees"] == 20
    keys = ["max/naive", "max/hello", "max/floor", "fixed/naive", "fixed/hello", "fixed/floor"]
    if pinned_plan() is not None:  # pinned mode runs wherever there are two cores
        keys += ["pinned/floor", "pinned/naive"]
        assert "## Pinned mode (closed loop, 16 connections)" in text
    for key in keys:
        run = results["reps"][0][key]
        assert run["completed"] > 0, key
        assert run["failed"] == 0, key
        assert run["server_cpu_us_per_request"] > 0, key
        parts = run["server_cpu_parts_us_per_request"]  # rounded each to 0.1 us
        assert sum(parts.values()) == pytest.approx(run["server_cpu_us_per_request"], abs=0.3)
    assert "| floor | `benchmarks/floor_app.py`: the scoring floor" in text
    assert not (out / "bench" / "history.json").exists()  # a smoke run is not history
    assert {p.name for p in (out / "bench").glob("*.png")} == {"throughput.png", "fixed.png"}
    # The adapter's layouts that a graph's own concatenation allows to fold add no node at all.
    added = {k: v["nodes_more_than_native"] for k, v in results["adapter"]["variants"].items()}
    assert added == {
        "per-column float": 0,
        "per-column double": 0,
        "single matrix": 0,
        "per-column, no concat": 61,
        "per-column, fed natively": 1,
    }
    assert "## Input adapter" in text
