"""Scorer replicas as real processes (``python -m shadowline serve``) behind a real HAProxy.

Each replica is its own process group, configured only by ``SHADOWLINE_*`` variables, as in
production.  HAProxy (the Debian package; `make install` installs it) runs the shipped
deploy/haproxy/haproxy.cfg with its servers pointed at the replicas: round-robin, ``/readyz``
health checks, and a retry on another replica for a request that got no answer.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import redis

from shadowline.stack import HOST, free_port

HAPROXY_CONFIG = Path(__file__).resolve().parents[2] / "deploy/haproxy/haproxy.cfg"


def haproxy_config(port: int, replicas: list[Replica]) -> str:
    """deploy/haproxy/haproxy.cfg listening on 127.0.0.1:``port`` with ``replicas`` as its
    servers (everything else as shipped)."""
    lines: list[str] = []
    for line in HAPROXY_CONFIG.read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("bind "):
            line = f"    bind {HOST}:{port}"
        elif stripped.startswith("server "):
            if not lines[-1].strip().startswith("server "):
                lines += [f"    server {r.name} {HOST}:{r.port} check" for r in replicas]
            continue
        lines.append(line)
    return "\n".join(lines) + "\n"


def haproxy_binary() -> str:
    """Path of haproxy (Debian puts it in /usr/sbin); fails naming how to install it."""
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if found is None:
        raise RuntimeError("haproxy is not installed: run `make install` (apt-get haproxy)")
    return found


def _wait(url: str, process: subprocess.Popen[bytes], log: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{url} did not answer 200:\n{tail}")
        time.sleep(0.05)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """TERM the process group, then KILL it (a killed replica's group is already gone)."""
    for sig, wait_s in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@dataclass
class Replica:
    """One scorer process on 127.0.0.1:``port``."""

    name: str
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def production(self) -> str | None:
        """The production version this replica serves now (None if it does not answer)."""
        try:
            body = httpx.get(f"{self.url}/readyz", timeout=1.0).json()
        except (httpx.HTTPError, ValueError):
            return None
        production = body.get("production") or {}
        version = production.get("version")
        return str(version) if version is not None else None

    def kill(self) -> None:
        """SIGKILL the replica: no shutdown, no goodbye to the load balancer."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def drop_event_subscription(self, client: redis.Redis) -> int:
        """Close this replica's pub/sub connection from the Redis side (as a network blip or
        a Redis failover would): events published until it reconnects never reach it.
        Returns how many connections were closed."""
        redis_port = int(client.connection_pool.connection_kwargs["port"])
        mine = {
            conn.laddr.port
            for conn in psutil.Process(self.process.pid).net_connections(kind="tcp")
            if conn.raddr and conn.raddr.port == redis_port
        }
        closed = 0
        for entry in client.client_list(_type="pubsub"):
            if int(entry["addr"].rsplit(":", 1)[1]) in mine:
                closed += int(client.client_kill_filter(_id=entry["id"]))
        return closed


@contextlib.contextmanager
def replica(
    name: str, env: Mapping[str, str], folder: Path, timeout_s: float = 60.0
) -> Iterator[Replica]:
    """``python -m shadowline serve`` with ``env`` (SHADOWLINE_*), in ``folder``, until the
    block ends; yields once /readyz answers 200."""
    port = free_port()
    log = folder / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "shadowline", "serve", "--port", str(port)],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **env},
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = Replica(name=name, port=port, process=process)
    try:
        _wait(f"{started.url}/readyz", process, log, timeout_s)
        yield started
    finally:
        _stop(process)


@contextlib.contextmanager
def haproxy(replicas: list[Replica], folder: Path, timeout_s: float = 20.0) -> Iterator[str]:
    """HAProxy with deploy/haproxy/haproxy.cfg in front of ``replicas``; yields its base URL
    once a request through it reaches a ready replica."""
    port = free_port()
    config = folder / "haproxy.cfg"
    config.write_text(haproxy_config(port, replicas))
    log = folder / "haproxy.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [haproxy_binary(), "-db", "-f", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://{HOST}:{port}"
    try:
        _wait(f"{url}/readyz", process, log, timeout_s)
        yield url
    finally:
        _stop(process)
