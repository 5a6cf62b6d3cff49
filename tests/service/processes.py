"""Dedicated Redis and broker processes for tests that kill them (not the session ones)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from shadowline.stack import HOST, broker_command, ping_broker, ping_redis, redis_binary


class Service:
    """A restartable server process on a fixed port."""

    def __init__(
        self,
        command: Callable[[int], list[str]],
        ping: Callable[[int], object],
        port: int,
        log: Path,
    ) -> None:
        self._command, self._ping, self.port, self._log = command, ping, port, log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, timeout_s: float = 20.0) -> None:
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                self._command(self.port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={"PATH": "/usr/bin:/bin"},
            )
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._ping(self.port)
                return
            except Exception:  # not answering yet (OSError, KafkaError, RedisError)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def pause(self) -> None:
        """SIGSTOP: it keeps its connections but answers nothing (until killed)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(10)
            self._process = None


def _redis_command(port: int) -> list[str]:
    return [
        str(redis_binary()),
        "--port",
        str(port),
        "--bind",
        HOST,
        "--save",
        "",
        "--appendonly",
        "no",
    ]


@contextlib.contextmanager
def dedicated(kind: str, port: int, log: Path) -> Iterator[Service]:
    """A broker (``kind="kafka"``) or redis-server started for one test, killed after it."""
    command, ping = (
        (broker_command, ping_broker) if kind == "kafka" else (_redis_command, ping_redis)
    )
    service = Service(command, ping, port, log)
    service.start()
    try:
        yield service
    finally:
        service.kill()
