"""py-spy profiles of the scorer and its sidecar, taken in every run (docs/bench/profile-*.txt)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.load import load
from benchmarks.servers import wait_for_scorer


def _pyspy() -> str:
    return str(Path(sys.executable).with_name("py-spy"))


OWN_CODE = ("(service/", "(registry/")


def _process_label(frame: str) -> str:
    """``process 123:"/abs/.venv/bin/python /abs/.venv/bin/shadowline serve"`` ->
    ``pid 123: .venv/bin/python .venv/bin/shadowline serve`` (paths relative, pid kept: a
    forked child has its parent's command line)."""
    pid, _, cmd = frame.removeprefix("process ").partition(":")
    cmd = cmd.strip('"').replace(str(Path.cwd()) + "/", "")
    return f"pid {pid}: {cmd[:80]}"


def summarize_raw(text: str, top: int = 15) -> dict[str, Any]:
    """Collapsed stacks (``frame;frame;... count``, py-spy's raw format) -> total samples,
    each process's share, the top innermost frames, and the top frames of our own code
    (service/, registry/) counted inclusively; shares in % of all samples."""
    self_counts: Counter[str] = Counter()
    own: Counter[str] = Counter()
    procs: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        samples += count
        frames = stack.split(";")
        # A child's stacks sit under its parent's process frame: the innermost one is its own.
        own_process = [f for f in frames if f.startswith("process ")]
        if own_process:
            procs[_process_label(own_process[-1])] += count
        self_counts[frames[-1]] += count
        for frame in {f for f in frames if any(mark in f for mark in OWN_CODE)}:
            own[frame] += count

    def shares(counter: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(frame, round(100.0 * c / samples, 1)) for frame, c in counter.most_common(n)]

    if not samples:
        return {"samples": 0, "processes": [], "top_self": [], "top_own": []}
    return {
        "samples": samples,
        "processes": shares(procs, 5),
        "top_self": shares(self_counts, top),
        "top_own": shares(own, top),
    }


def trim_raw(text: str, keep: int = 100) -> str:
    """Collapsed stacks without line numbers (``fn (file:12)`` -> ``fn (file)``), merged,
    the ``keep`` heaviest first: small enough to commit, still loadable by flame graph tools."""
    merged: Counter[str] = Counter()
    for line in text.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if stack and count_s.isdigit():
            merged[re.sub(r":\d+\)", ")", stack)] += int(count_s)
    return "".join(f"{stack} {count}\n" for stack, count in merged.most_common(keep))


def profile_scorer(ctx: Any, rate: float, assets: Path) -> list[dict[str, Any]]:
    """Record the scorer and its children (the sidecar) with py-spy during a closed-loop run
    (max throughput, shadows off; pinned when pinned mode is on: py-spy then runs on the
    generator's core) and during an open-loop run with 3 shadows at ``rate``."""
    scorer = ctx.servers["scorer"]
    assets.mkdir(parents=True, exist_ok=True)
    seconds = ctx.durations.profile
    out = []
    where = "pinned, " if ctx.cores is not None else ""
    plans = [
        (
            f"max throughput, 16 connections, shadows off ({where}scorer + sidecar)",
            None,
            0,
            "profile-max.txt",
            True,
        ),
        (
            f"{rate:.0f} req/s with 3 shadows (scorer + sidecar)",
            rate,
            3,
            "profile-shadows.txt",
            False,
        ),
    ]
    for title, run_rate, shadows, name, pin in plans:
        ctx.stack.set_shadows(shadows)
        wait_for_scorer(scorer, shadows=shadows)
        path = assets / name
        cmd = [
            _pyspy(),
            "record",
            "--pid",
            str(scorer.proc.pid),
            "--subprocesses",
            "--duration",
            str(int(seconds)),
            "--rate",
            "250",
            "--format",
            "raw",
            "--nonblocking",
            "--output",
            str(path),
        ]
        with ctx.pinned("scorer") if pin else contextlib.nullcontext():
            err = _record(cmd, scorer.url, run_rate, seconds)
        shown = "py-spy " + " ".join(cmd[1:]).replace(str(scorer.proc.pid), "<scorer pid>")
        entry: dict[str, Any] = {"title": title, "command": shown, "file": name, "error": None}
        if path.exists():
            raw = path.read_text()
            entry |= summarize_raw(raw)
            path.write_text(trim_raw(raw))  # the full file is ~1 MB: keep what matters
        else:
            entry |= summarize_raw("")
            entry["error"] = err.decode(errors="replace").strip()[:300]
        out.append(entry)
    ctx.stack.set_shadows(0)
    return out


def _record(cmd: list[str], url: str, rate: float | None, seconds: float) -> bytes:
    """Run py-spy ``cmd`` while the generator loads ``url``; returns py-spy's stderr."""
    spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    loader = threading.Thread(
        target=load,
        args=(url, "scorer"),
        kwargs={"rate": rate, "duration_s": seconds + 1.0},
        daemon=True,
    )
    loader.start()
    try:
        _, err = spy.communicate(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        spy.kill()
        _, err = spy.communicate()
    loader.join(seconds + 20)
    return err
