"""The bench's CPU times: parsed from /proc/stat's first line, and put in the run's seconds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks import cpustat
from benchmarks.render_bounds import _cpu
from benchmarks.report import in_second
from benchmarks.tcpstat import Sampler

# user nice system idle iowait irq softirq steal guest guest_nice, in ticks
STAT = "cpu  100 20 30 800 5 1 4 40 7 0\ncpu0 50 10 15 400 2 1 2 20 7 0\nintr 1 2 3\n"


def test_busy_steal_and_total_come_from_the_first_line_in_ms(tmp_path: Path) -> None:
    path = tmp_path / "stat"
    path.write_text(STAT)
    tick_ms = 1000 / os.sysconf("SC_CLK_TCK")
    assert cpustat.read(path) == {
        "busy_ms": round((100 + 20 + 30 + 1 + 4) * tick_ms),  # not idle, iowait, steal, guest
        "steal_ms": round(40 * tick_ms),
        "total_ms": round((100 + 20 + 30 + 800 + 5 + 1 + 4 + 40) * tick_ms),  # guest: in user
    }


def test_a_missing_or_foreign_file_reads_as_none(tmp_path: Path) -> None:
    assert cpustat.read(tmp_path / "missing") is None
    (tmp_path / "short").write_text("cpu 1 2 3\n")
    assert cpustat.read(tmp_path / "short") is None
    (tmp_path / "words").write_text("cpu a b c d e f g h\n")
    assert cpustat.read(tmp_path / "words") is None


def test_each_second_gets_what_the_cores_did_in_it() -> None:
    sampler = Sampler(read=cpustat.read, counters=cpustat.COUNTERS)
    sampler.samples = [
        (100.0, {"busy_ms": 0, "steal_ms": 0, "total_ms": 0}),
        (100.6, {"busy_ms": 900, "steal_ms": 0, "total_ms": 1200}),
        (101.4, {"busy_ms": 2500, "steal_ms": 30, "total_ms": 2800}),
    ]
    summary = sampler.summary(started_wall=100.0, seconds=2)
    assert summary is not None
    assert summary["total"] == {"busy_ms": 2500, "steal_ms": 30, "total_ms": 2800}
    second = in_second(summary, 1)
    assert second == {"busy_ms": 1600, "steal_ms": 30, "total_ms": 1600}
    assert _cpu(second) == "100%, 30 ms"
    assert _cpu(in_second(summary, 0)) == "75%, 0 ms"
    assert _cpu(None) == "not read"
    assert _cpu({"busy_ms": 0, "steal_ms": 0, "total_ms": 0}) == "not read"


def test_a_busy_loop_on_this_machine_shows_as_busy_time() -> None:
    """On Linux the sampler reads the live counters: a spinning thread is busy time."""
    if cpustat.read() is None:
        pytest.skip("no /proc/stat here: the bench reports the CPU as not read")
    with Sampler(every_s=0.01, read=cpustat.read, counters=cpustat.COUNTERS) as sampler:
        spin_until = os.times().elapsed + 0.3
        while os.times().elapsed < spin_until:
            pass
    summary = sampler.summary(started_wall=None, seconds=0)
    assert summary is not None
    total = summary["total"]
    # One core spun for 0.3 s: at least 0.2 s of busy time (ticks are 10 ms).
    assert total["busy_ms"] >= 200
    assert total["total_ms"] >= total["busy_ms"] >= 0
    assert 0 <= total["steal_ms"] <= total["total_ms"]
