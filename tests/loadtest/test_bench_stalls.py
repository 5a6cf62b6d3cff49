"""The bench's stall dumps: taken from the scorer's log per scenario run, written by run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks import stalls

LOG = """\
INFO:     Uvicorn running on http://127.0.0.1:8000
Timeout (0:00:00.025000)!
Thread 0x00007f0000000001 (most recent call first):
  File "/srv/service/loader.py", line 120 in reconcile
  File "/usr/lib/python3.11/threading.py", line 975 in run

Thread 0x00007f0000000002 (most recent call first):
  File "/srv/service/scorer.py", line 80 in score
WARNING:service.lagprobe:event loop stalled: 31.0 ms without a wake-up
Timeout (0:00:00.025000)!
Current thread 0x00007f0000000003 (most recent call first):
  File "/srv/service/app.py", line 10 in main
"""


def test_each_dump_is_taken_whole_and_nothing_else() -> None:
    got = stalls.dumps(LOG)
    assert len(got) == 2
    assert got[0].splitlines()[0] == "Timeout (0:00:00.025000)!"
    assert "in reconcile" in got[0]
    assert "in score" in got[0]
    assert "WARNING" not in got[0]
    assert "Uvicorn" not in got[0]
    assert got[1].endswith("line 10 in main")


def test_a_run_takes_only_what_it_added_to_the_log(tmp_path: Path) -> None:
    log = tmp_path / "scorer.log"
    assert stalls.size(log) == 0
    assert stalls.read_new(log, 0) == []
    first, second = LOG.split("WARNING")
    log.write_text(first)
    start = stalls.size(log)
    with log.open("a") as f:
        f.write("WARNING" + second)
    got = stalls.read_new(log, start)
    assert len(got) == 1
    assert "in main" in got[0]


def test_a_real_faulthandler_dump_is_recognised(tmp_path: Path) -> None:
    """The format is faulthandler's own: a process that stalls past its limit writes one."""
    log = tmp_path / "scorer.log"
    code = "import faulthandler, time; faulthandler.dump_traceback_later(0.05); time.sleep(0.3)"
    with log.open("w") as f:
        subprocess.run([sys.executable, "-c", code], stderr=f, check=True, timeout=30)
    got = stalls.read_new(log, 0)
    assert len(got) == 1
    assert got[0].startswith("Timeout (0:00:00.05")
    assert '"<string>", line 1' in got[0]


def test_the_report_file_names_each_dumps_run_or_says_none(tmp_path: Path) -> None:
    path = tmp_path / "stalls.txt"
    results = {
        "reps": [
            {"shadows0": {"stalls": []}, "change": {"stalls": ["Timeout (x)!\n  a"]}},
            {"promotions": {"stalls": ["Timeout (y)!\n  b", "Timeout (z)!\n  c"]}},
        ]
    }
    assert stalls.write(results, path) == 3
    text = path.read_text()
    assert "== change rep 1 ==\nTimeout (x)!" in text
    assert text.count("== promotions rep 2 ==") == 2
    assert stalls.write({"reps": [{"shadows0": {"stalls": []}}]}, path) == 0
    assert "None in this run." in path.read_text()
