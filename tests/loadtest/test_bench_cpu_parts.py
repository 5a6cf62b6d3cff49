"""Where a bench server's CPU time goes, read from a live process tree: its event loop's (main)
thread, its other threads, its child processes (the report's table: test_bench_report.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from benchmarks.servers import CPU_PARTS, Server

# Spins its main thread, then another thread, then a child process, 0.3 s of CPU each; says
# "spun" and waits until its standard input closes (the child waits with it).
SPINNER = """
import multiprocessing, sys, threading, time

def spin():
    end = time.thread_time() + 0.3
    while time.thread_time() < end:
        pass

def spin_and_wait(spun):
    spin()
    spun.set()
    time.sleep(60)

if __name__ == "__main__":
    spin()
    other = threading.Thread(target=spin)
    other.start()
    other.join()
    context = multiprocessing.get_context("fork")
    spun = context.Event()
    child = context.Process(target=spin_and_wait, args=(spun,))
    child.start()
    spun.wait(30)
    print("spun", flush=True)
    sys.stdin.read()
    child.kill()
"""


def test_each_part_of_a_process_tree_gets_the_cpu_it_used(tmp_path: Path) -> None:
    command = [sys.executable, "-c", SPINNER]
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
    with subprocess.Popen(command, **pipes) as proc:  # type: ignore[call-overload]
        server = Server("spinner", 0, proc, tmp_path / "spinner.log", "/", command)
        assert proc.stdin is not None
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"spun"
        parts = server.cpu_parts()
        proc.stdin.close()
        proc.wait(10)
    assert set(parts) == set(CPU_PARTS)
    # 0.3 s each, read in 10 ms ticks; the interpreter's start-up adds to the main thread.
    assert 0.25 <= parts["loop"] < 1.5
    assert 0.25 <= parts["threads"] < 0.6
    assert 0.25 <= parts["children"] < 0.6
    assert server.cpu_parts() == dict.fromkeys(CPU_PARTS, 0.0)  # gone: nothing to read
