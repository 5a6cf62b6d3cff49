"""The local stack against the real redis-server and broker binaries."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer
from typer.testing import CliRunner

from shadowline.cli import app
from shadowline.stack import HOST, Component, LocalStack, StackError, ping_broker

runner = CliRunner()


def test_session_stack_answers_real_requests(
    redis_client: redis.Redis, make_topic: object, kafka_bootstrap: str
) -> None:
    redis_client.set("k", "v")
    assert redis_client.get("k") == "v"

    assert callable(make_topic)
    topic = make_topic("roundtrip")
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks=1)
    producer.send(topic, key=b"tx-1", value=b"hello").get(timeout=10)
    producer.close()
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    values = [(m.key, m.value) for m in consumer]
    consumer.close()
    assert values == [(b"tx-1", b"hello")]


def test_redis_client_fixture_starts_with_no_keys(redis_client: redis.Redis) -> None:
    assert redis_client.dbsize() == 0


def test_cli_up_status_down_leaves_no_process(in_tmp_cwd: Path) -> None:
    up = runner.invoke(app, ["stack", "up", "--json"])
    assert up.exit_code == 0, up.output
    started = json.loads(up.output)
    assert {c["name"] for c in started} == {"redis", "kafka"}
    env_file = (in_tmp_cwd / ".shadowline" / "stack.env").read_text()
    for comp in started:
        assert comp["address"] in env_file

    status = runner.invoke(app, ["stack", "status", "--json"])
    assert status.exit_code == 0, status.output
    health = json.loads(status.output)
    assert [h["healthy"] for h in health] == [True, True]
    assert "shadowline.scores" in health[1]["detail"]  # topics created at start

    # A second `up` keeps the healthy stack rather than starting another.
    again = runner.invoke(app, ["stack", "up", "--json"])
    assert [c["pid"] for c in json.loads(again.output)] == [c["pid"] for c in started]

    down = runner.invoke(app, ["stack", "down"])
    assert down.exit_code == 0
    assert "stopped: redis, kafka" in down.output
    for comp in started:
        assert not psutil.pid_exists(comp["pid"]) or (
            psutil.Process(comp["pid"]).status() == psutil.STATUS_ZOMBIE
        )
    assert not (in_tmp_cwd / ".shadowline" / "stack.env").exists()

    after = runner.invoke(app, ["stack", "status"])
    assert after.exit_code == 1
    assert "not running" in after.output


def test_status_reports_a_dead_component(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path)
    components = stack.up()
    redis_comp = next(c for c in components if c.name == "redis")
    psutil.Process(redis_comp.pid).kill()
    psutil.Process(redis_comp.pid).wait(5)
    health = {h.name: h for h in stack.status()}
    assert not health["redis"].healthy
    assert health["redis"].detail == "process not running"
    assert health["kafka"].healthy
    assert stack.down() == ["kafka"]


def test_busy_port_is_refused_by_name(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        with pytest.raises(StackError, match=f"^redis port {busy} on 127.0.0.1 is already in use$"):
            LocalStack(tmp_path).up(redis_port=busy)
    assert LocalStack(tmp_path).components() == []


def test_unreadable_state_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text("{not json")
    with pytest.raises(StackError, match=r"stack state file .*stack\.json is unreadable"):
        LocalStack(tmp_path).components()


def test_missing_redis_binary_is_named(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="no-such-redis is not on PATH"):
        LocalStack(tmp_path, redis_server="no-such-redis").up()


def test_recycled_pid_is_not_signalled(tmp_path: Path) -> None:
    # A state file naming a live process with a different start time (e.g. pid reuse after a
    # reboot) must not be treated as ours.
    me = psutil.Process()
    fake = Component(
        name="redis", pid=me.pid, create_time=me.create_time() - 100, port=1, log="x.log"
    )
    (tmp_path / "stack.json").write_text(json.dumps({"components": [fake.__dict__]}))
    stack = LocalStack(tmp_path)
    assert [h.running for h in stack.status()] == [False]
    assert stack.down() == []


def test_ping_broker_fails_on_closed_port() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        ping_broker(port, timeout_s=0.5)


def test_up_restarts_only_the_dead_component_and_redis_keeps_its_data(tmp_path: Path) -> None:
    stack = LocalStack(tmp_path)
    before = {c.name: c for c in stack.up()}
    client = redis.Redis(host="127.0.0.1", port=before["redis"].port)
    client.set("registry-state", "kept")
    client.close()
    proc = psutil.Process(before["redis"].pid)
    proc.kill()
    proc.wait(5)
    try:
        after = {c.name: c for c in stack.up(topics=["shadowline.scores"])}
        assert after["kafka"].pid == before["kafka"].pid  # the healthy broker was kept
        assert after["redis"].pid != before["redis"].pid
        assert after["redis"].port == before["redis"].port  # same address for running scorers
        client = redis.Redis(host="127.0.0.1", port=after["redis"].port)
        assert client.get("registry-state") == b"kept"  # append-only file reloaded
        client.close()
        assert [h.healthy for h in stack.status()] == [True, True]
    finally:
        stack.down()


def lingering(port: int) -> set[str]:
    """States of the sockets still bound to ``port`` on 127.0.0.1 that nothing listens on."""
    return {
        conn.status
        for conn in psutil.net_connections(kind="tcp4")
        if conn.laddr and conn.laddr.port == port and conn.status != psutil.CONN_LISTEN
    }


def accepted(server: psutil.Process, client_port: int, timeout_s: float = 10.0) -> None:
    """Until ``server`` (or one of its threads' processes) holds the connection from
    ``client_port``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        processes = [server, *server.children(recursive=True)]
        if any(
            conn.raddr and conn.raddr.port == client_port
            for proc in processes
            for conn in proc.net_connections(kind="tcp4")
        ):
            return
        time.sleep(0.02)
    raise AssertionError(f"pid {server.pid} did not accept the connection from {client_port}")


def test_up_restarts_components_killed_with_their_connections_open_at_once(
    tmp_path: Path,
) -> None:
    # kill -9 leaves the dead servers' connections in TIME-WAIT for about a minute; `up`
    # must still restart both on their ports at once.
    stack = LocalStack(tmp_path)
    before = {c.name: c for c in stack.up(topics=["shadowline.scores"])}
    clients = [socket.create_connection((HOST, c.port)) for c in before.values()]
    try:
        for comp, client in zip(before.values(), clients, strict=True):
            # A connection still in the listen backlog is reset by the kill, not left in
            # TIME-WAIT: wait until the server has accepted it (a busy machine can lag).
            accepted(psutil.Process(comp.pid), client.getsockname()[1])
        for comp in before.values():
            proc = psutil.Process(comp.pid)
            proc.kill()
            proc.wait(5)
        for client in clients:
            client.close()  # the servers closed first: their sockets wait in TIME-WAIT
        for comp in before.values():
            deadline = time.monotonic() + 2.0
            while psutil.CONN_TIME_WAIT not in lingering(comp.port):
                assert time.monotonic() < deadline, lingering(comp.port)
                time.sleep(0.02)
        after = {c.name: c for c in stack.up(topics=["shadowline.scores"])}
        assert {n: c.port for n, c in after.items()} == {n: c.port for n, c in before.items()}
        assert all(after[n].pid != before[n].pid for n in after)
        assert [h.healthy for h in stack.status()] == [True, True]
        assert "shadowline.scores" in ping_broker(after["kafka"].port)
    finally:
        for client in clients:
            client.close()
        stack.down()


def test_up_waits_for_a_dead_components_port_to_be_released(tmp_path: Path) -> None:
    # A killed broker can look dead (its main thread a zombie) while its other threads, still
    # exiting, hold the listening socket for a moment: `up` waits for the port, then starts.
    stack = LocalStack(tmp_path)
    before = {c.name: c for c in stack.up()}
    proc = psutil.Process(before["redis"].pid)
    proc.kill()
    proc.wait(5)
    port = before["redis"].port
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_PORT, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "listening\n"
        after = {c.name: c for c in stack.up()}
        assert holder.wait(5) == 0  # it let go of the port first
        assert after["redis"].port == port
        assert [h.healthy for h in stack.status()] == [True, True]
    finally:
        holder.kill()
        holder.communicate()
        stack.down()


HOLD_PORT = """
import socket, sys, time
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
print("listening", flush=True)
time.sleep(1.0)
"""
