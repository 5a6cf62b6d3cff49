"""The servers under test, each a separate process on a free 127.0.0.1 port.

Every HTTP server runs on uvicorn with the same options (uvloop, httptools, no access log, one
worker unless stated; the scorer's httptools protocol sends each response in one write,
``service/http_protocol.py``).  Each is started in a session of its own so that stopping it
also stops any child it made (uvicorn workers, the scorer's Kafka producer process).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[1]  # servers import benchmarks.* from here
UVICORN_OPTIONS = [
    "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning",
    "--workers", "1",
]  # fmt: skip


# Where a server's CPU time goes (Server.cpu_parts): its event loop's thread, its other threads,
# its child processes.
CPU_PARTS = ("loop", "threads", "children")


class BenchError(Exception):
    """The benchmark cannot go on; the message says which server or step failed."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running server process and where it answers."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path
    ready_path: str
    cmd: list[str]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def get(self, path: str, timeout_s: float = 2.0) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=timeout_s) as resp:  # noqa: S310 - our loopback server
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Poll ``ready_path`` until it answers 200; raise BenchError with the log tail if the
        process exits or the time runs out."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BenchError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            with contextlib.suppress(OSError):
                if self.get(self.ready_path, 1.0)[0] == 200:
                    return
            time.sleep(0.2)
        raise BenchError(f"{self.name} not ready after {timeout_s:.0f} s:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process and its live children so far."""
        return sum(self.cpu_parts().values())

    def cpu_parts(self) -> dict[str, float]:
        """:meth:`cpu_seconds` in the parts of :data:`CPU_PARTS`: the server's main thread
        (uvicorn runs its event loop there: HTTP, the app, the scoring), the rest of its
        process (its other threads, those that ended included) and its live child processes
        (the scorer's sidecar).  All 0.0 once it has exited."""
        import psutil

        parts = dict.fromkeys(CPU_PARTS, 0.0)
        try:
            proc = psutil.Process(self.proc.pid)
            times = proc.cpu_times()
            main = [t for t in proc.threads() if t.id == proc.pid]
            children = proc.children(recursive=True)
        except psutil.Error:
            return parts
        loop = sum(t.user_time + t.system_time for t in main)
        parts["loop"] = loop
        # The process's total and its main thread's are read apart, in 10 ms ticks: the main
        # thread may have gained a tick the total has not yet, which is not negative CPU.
        parts["threads"] = max(0.0, times.user + times.system - loop)
        for child in children:
            try:
                child_times = child.cpu_times()
            except psutil.Error:  # it exited in between: its time is no longer counted
                continue
            parts["children"] += child_times.user + child_times.system
        return parts

    def tail(self, chars: int = 1500) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def pause(self, paused: bool = True) -> None:
        """SIGSTOP (or SIGCONT) the server's process group: a paused server takes no CPU
        while others are measured, and catches up with the registry when it continues."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGSTOP if paused else signal.SIGCONT)

    def stop(self) -> None:
        """SIGTERM the server's process group, SIGKILL after 10 s."""
        self.pause(False)  # a stopped process would not act on SIGTERM
        if self.proc.poll() is None:
            for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)
                try:
                    self.proc.wait(wait_s)
                    break
                except subprocess.TimeoutExpired:
                    continue


def start(
    name: str, cmd: list[str], log_dir: Path, ready_path: str, env: dict[str, str] | None = None
) -> Server:
    """Start ``cmd`` (its own session, output to ``<log_dir>/<name>.log``)."""
    port_arg = cmd.index("--port") + 1 if "--port" in cmd else -1
    log = log_dir / f"{name}.log"
    handle = log.open("ab")
    proc = subprocess.Popen(
        cmd,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        start_new_session=True,
        cwd=REPO_ROOT,
    )
    handle.close()
    return Server(
        name=name,
        port=int(cmd[port_arg]),
        proc=proc,
        log=log,
        ready_path=ready_path,
        cmd=cmd,
    )


def uvicorn_cmd(app: str, port: int, *, factory: bool = False) -> list[str]:
    cmd = [sys.executable, "-m", "uvicorn", app, "--host", HOST, "--port", str(port)]
    return cmd + UVICORN_OPTIONS + (["--factory"] if factory else [])


def start_hello(log_dir: Path) -> Server:
    return start("hello", uvicorn_cmd("benchmarks.hello_asgi:app", free_port()), log_dir, "/")


def start_floor(log_dir: Path, model_path: Path) -> Server:
    """The scoring floor (benchmarks/floor_app.py) on the benchmark model."""
    cmd = uvicorn_cmd("benchmarks.floor_app:create_app", free_port(), factory=True)
    return start("floor", cmd, log_dir, "/", {"FLOOR_MODEL_PATH": str(model_path)})


def start_naive(log_dir: Path, model_path: Path) -> Server:
    cmd = uvicorn_cmd("benchmarks.naive_app:create_app", free_port(), factory=True)
    return start("naive", cmd, log_dir, "/openapi.json", {"NAIVE_MODEL_PATH": str(model_path)})


def start_scorer(
    log_dir: Path, env: dict[str, str], workers: int | None = None, name: str = "scorer"
) -> Server:
    """``shadowline serve`` configured by SHADOWLINE_* variables (its only configuration)."""
    port = free_port()
    cmd = [str(Path(sys.executable).with_name("shadowline")), "serve", "--port", str(port)]
    if workers:
        cmd += ["--workers", str(workers)]
    return start(name, cmd, log_dir, "/readyz", env)


def wait_for_scorer(
    scorer: Server,
    *,
    shadows: int | None = None,
    production: str | None = None,
    timeout_s: float = 15.0,
) -> dict[str, Any]:
    """Poll /readyz until the scorer serves ``production`` with ``shadows`` shadows, each
    loaded by its sidecar (a run must not start while the sidecar still builds them)."""
    deadline = time.monotonic() + timeout_s
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, raw = scorer.get("/readyz")
        body = json.loads(raw) if raw else {}
        prod = (body.get("production") or {}).get("version")
        if (
            status == 200
            and (shadows is None or len(body.get("shadows", [])) == shadows)
            and all(s.get("loaded", True) for s in body.get("shadows", []))
            and (production is None or prod == production)
        ):
            return body
        time.sleep(0.1)
    raise BenchError(f"scorer did not reach shadows={shadows} production={production}: {body}")
