"""py-spy profiles of the scorer under the load where a target was missed."""

from __future__ import annotations

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


def summarize_raw(
    text: str, top: int = 15
) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """Collapsed stacks (``frame;frame;... count``) -> total samples, top self frames and top
    inclusive frames with their share of samples in %."""
    self_counts: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    samples = 0
    for line in text.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        samples += count
        frames = stack.split(";")
        self_counts[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
    if not samples:
        return 0, [], []

    def pct(count: int) -> float:
        return 100.0 * count / samples

    skip = ("<module>", "run (", "_run_once", "run_forever", "run_until_complete")
    inclusive = [(f, pct(c)) for f, c in incl.most_common(60) if not f.startswith(skip)]
    return samples, [(f, pct(c)) for f, c in self_counts.most_common(top)], inclusive[:top]


def profile_scorer(ctx: Any, rate: float, assets: Path) -> list[dict[str, Any]]:
    """Record the scorer (and its children) with py-spy during a closed-loop run (throughput)
    and during an open-loop run with 3 shadows at ``rate``."""
    scorer = ctx.servers["scorer"]
    seconds = ctx.durations.profile
    out = []
    plans = [("max throughput, 16 connections, shadows off", None, 0, "profile-max.txt"),
             (f"{rate:.0f} req/s with 3 shadows", rate, 3, "profile-shadows.txt")]  # fmt: skip
    for title, run_rate, shadows, name in plans:
        ctx.stack.set_shadows(shadows)
        wait_for_scorer(scorer, shadows=shadows)
        path = assets / name
        cmd = [_pyspy(), "record", "--pid", str(scorer.proc.pid), "--subprocesses",
               "--duration", str(int(seconds)), "--rate", "250", "--format", "raw",
               "--nonblocking", "--output", str(path)]  # fmt: skip
        spy = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        loader = threading.Thread(
            target=load, args=(scorer.url, "scorer"),
            kwargs={"rate": run_rate, "duration_s": seconds + 1.0}, daemon=True,
        )  # fmt: skip
        loader.start()
        try:
            _, err = spy.communicate(timeout=seconds + 30)
        except subprocess.TimeoutExpired:
            spy.kill()
            _, err = spy.communicate()
        loader.join(seconds + 20)
        if not path.exists():
            out.append({"title": title, "command": " ".join(cmd[1:]), "samples": 0, "file": name,
                        "top_self": [], "top_inclusive": [(err.decode()[-200:], 0.0)]})  # fmt: skip
            continue
        samples, top_self, top_incl = summarize_raw(path.read_text())
        out.append({"title": title, "command": "py-spy " + " ".join(cmd[1:]).replace(
            str(scorer.proc.pid), "<scorer pid>"), "samples": samples, "file": name,
            "top_self": top_self, "top_inclusive": top_incl})  # fmt: skip
    ctx.stack.set_shadows(0)
    return out
