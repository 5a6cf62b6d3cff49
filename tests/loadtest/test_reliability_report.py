"""The fault matrix's report and judging on made-up results (no servers, no timing)."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

from benchmarks.faults import Row
from benchmarks.reliability_report import BEGIN, END, write
from benchmarks.watch import Delivery


def results(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "machine": {"cpu": "Test CPU", "nproc": 2},
        "mode": "quick",
        "rate": 200.0,
        "started": "2026-01-01 00:00",
        "elapsed_s": 61.0,
        "command": "python -m x --quick",
        "load_average_start": [1.5, 1.0, 1.0],
        "load_average_end": [2.5, 1.0, 1.0],
        "rows": rows,
    }


def test_a_row_passes_only_when_every_check_holds() -> None:
    row = Row(name="r", fault="kill", load="load", must_hold=["a", "b"])
    states = [row.passed]  # nothing measured is not a pass
    row.check("a held", True)
    states.append(row.passed)
    row.check("b did not", False)
    states.append(row.passed)
    assert states == [False, True, False]


def test_delivery_counts_losses_and_duplicates() -> None:
    seen = collections.Counter({"r1": 1, "r2": 3, "r3": 1})
    delivery = Delivery.of(answered=5, ids=seen)
    assert delivery.as_dict() == {"answered": 5, "records": 3, "lost": 2, "duplicates": 2}
    assert Delivery.of(answered=2, ids=seen).lost == 0  # more records than answers


def test_the_section_replaces_only_what_lies_between_its_markers(tmp_path: Path) -> None:
    page = tmp_path / "reliability.md"
    page.write_text(f"# Reliability\n\nHand-written.\n\n{BEGIN}\nold table\n{END}\n\n## After\n")
    ok = Row(name="a", fault="kill -9 of a | b", load="200 req/s", must_hold=["x holds"])
    ok.check("x held", True)
    bad = Row(
        name="b",
        fault="abuse",
        load="200 req/s",
        must_hold=["y holds", "z holds"],
        depends_on="other branch",
    )
    bad.check("y held", True)
    bad.check("z did not", False)
    write(results([ok.as_json(), bad.as_json()]), tmp_path)
    text = page.read_text()
    assert text.startswith("# Reliability\n\nHand-written.\n\n" + BEGIN)
    assert text.endswith(END + "\n\n## After\n")
    assert "old table" not in text
    assert "**1 of 2 rows pass.**" in text
    assert "| kill -9 of a \\| b | 200 req/s | x holds | x held | pass |" in text
    assert "y held<br>**✗** z did not | **FAIL** (needs other branch) |" in text
    assert "load average 1.5 at the start and 2.5 at the end" in text
    data = json.loads((tmp_path / "reliability" / "results.json").read_text())
    assert [r["passed"] for r in data["rows"]] == [True, False]


def test_a_page_without_markers_gets_the_section_appended(tmp_path: Path) -> None:
    (tmp_path / "reliability.md").write_text("# Reliability\n\nText.\n")
    write(results([]), tmp_path)
    text = (tmp_path / "reliability.md").read_text()
    assert text.startswith("# Reliability\n\nText.\n\n" + BEGIN)
    assert text.rstrip().endswith(END)


def test_a_rerun_of_some_rows_replaces_them_and_keeps_the_rest(tmp_path: Path) -> None:
    from benchmarks.reliability import merged

    def row(name: str, passed: bool) -> dict[str, Any]:
        kept = Row(name=name, fault="fault", load="load", must_hold=["holds"])
        kept.check("measured", passed)
        return kept.as_json()

    previous = tmp_path / "reliability" / "results.json"
    previous.parent.mkdir()
    previous.write_text(json.dumps(results([row("a", True), row("b", False)])))
    rerun = results([row("b", True)])
    rerun["started"] = "2026-01-01 01:00"
    whole = merged(rerun, previous)
    assert [(r["name"], r["passed"]) for r in whole["rows"]] == [("a", True), ("b", True)]
    assert [r["results"] for r in whole["reruns"]] == [{"b": "pass"}]
    write(whole, tmp_path)
    page = (tmp_path / "reliability.md").read_text()
    assert "**2 of 2 rows pass.**" in page
    assert (
        "Re-run 2026-01-01 01:00 (`python -m x --quick`, load average 1.5 at its start): b pass"
        in page
    )
    other_mode = {**rerun, "mode": "full"}
    assert merged(other_mode, previous) is other_mode  # a quick matrix never mixes with a full
