"""The generator against a real (tiny) HTTP server on 127.0.0.1: small counts, no timing
assertions -- only counts, statuses and failure accounting."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loadtest import (
    Payload,
    RunConfig,
    build_result,
    parse_target,
    run,
    synthetic_payloads,
    write_payload_file,
)
from shadowline.cli import app  # `shadowline loadtest`: where its error handling is mounted

cli = CliRunner()


def _cfg(port: int, **kw: object) -> RunConfig:
    fields: dict[str, object] = {
        "target": parse_target(f"http://127.0.0.1:{port}"),
        "payloads": tuple(synthetic_payloads(fields=4, per_kind=4)),
        "timeout_s": 2.0,
    }
    fields.update(kw)
    return RunConfig(**fields)  # type: ignore[arg-type]


def test_open_loop_sends_exactly_the_timetable_with_the_mix(http_port: int) -> None:
    cfg = _cfg(http_port, rate=400.0, duration_s=0.5, mix={"valid": 2, "invalid": 1, "batch": 1})
    rec, _ = run(cfg)
    assert rec.completed == 200
    assert rec.failed == 0
    assert sum(rec.by_kind.values()) == 200
    assert set(rec.by_kind) == {"valid", "invalid", "batch"}
    assert rec.by_status["422"] == rec.by_kind["invalid"]
    assert rec.by_status["200"] == rec.by_kind["valid"] + rec.by_kind["batch"]
    result = build_result(cfg, rec, 0.6)
    assert result["rate_achieved"] == 400.0
    assert result["generator"]["cpu_s"] > 0
    assert [t["completed"] for t in result["timeline"]] == [200]


def test_closed_loop_keeps_its_connections_busy_until_the_end(http_port: int) -> None:
    cfg = _cfg(http_port, mode="closed", connections=2, duration_s=0.3, mix={"valid": 1})
    rec, _ = run(cfg)
    assert rec.completed > 2
    assert rec.failed == 0
    assert dict(rec.by_status) == {"200": rec.completed}
    assert summary_p50(rec) > 0


def summary_p50(rec: object) -> float:
    from loadtest.stats import Recorder, summarize

    assert isinstance(rec, Recorder)
    return summarize(rec.latency)["p50"]


def test_closed_loop_stops_at_max_requests(http_port: int) -> None:
    cfg = _cfg(http_port, mode="closed", connections=3, duration_s=30.0, max_requests=25)
    rec, _ = run(cfg)
    assert rec.completed == 25


def test_two_processes_share_the_timetable_and_merge(http_port: int) -> None:
    cfg = _cfg(http_port, rate=200.0, duration_s=0.5, procs=2, mix={"valid": 1})
    rec, _ = run(cfg)
    assert rec.completed == 100
    assert rec.failed == 0


def test_one_isolated_process_runs_the_same_timetable(http_port: int) -> None:
    rec, _ = run(_cfg(http_port, rate=100.0, duration_s=0.3, mix={"valid": 1}), isolate=True)
    assert rec.completed == 30
    assert rec.failed == 0


def test_connections_idle_longer_than_keepalive_are_replaced(
    http_port: int, accepted_connections: Callable[[], int]
) -> None:
    before = accepted_connections()
    cfg = _cfg(http_port, rate=10.0, duration_s=0.5, keepalive_s=0.01, connections=1)
    rec, _ = run(cfg)
    assert rec.completed == 5
    assert rec.failed == 0
    assert accepted_connections() - before >= 3  # closed while idle, opened again


def test_preopened_connections_serve_in_turn_and_none_is_opened_mid_run(
    http_port: int,
    accepted_connections: Callable[[], int],
    served_since: Callable[[int], dict[int, int]],
) -> None:
    """A pool opened before the run is reused oldest first, so every connection in it stays
    in use (none idles until the keep-alive sweep closes it) and the run opens none."""
    before = accepted_connections()
    cfg = _cfg(http_port, rate=100.0, duration_s=0.5, connections=8, preopen=4)
    rec, _ = run(cfg)
    assert rec.completed == 50
    assert rec.failed == 0
    assert accepted_connections() - before == 4
    assert build_result(cfg, rec, 0.6)["connections"]["opened_during_run"] == 0
    served = served_since(before)
    assert len(served) == 4
    assert min(served.values()) >= 10  # about 50 / 4 each; one idle stack top would take all


@pytest.mark.parametrize("isolate", [False, True])
def test_connections_opened_during_the_run_are_counted_with_their_first_answer(
    http_port: int, accepted_connections: Callable[[], int], isolate: bool
) -> None:
    """One connection, closed whenever idle: each request after the first opens a new one
    during the run (the preopened one is not counted), and its answer is recorded apart."""
    before = accepted_connections()
    cfg = _cfg(http_port, rate=10.0, duration_s=0.5, keepalive_s=0.01, connections=1)
    rec, _ = run(cfg, isolate=isolate)
    result = build_result(cfg, rec, 0.6)
    opened = accepted_connections() - before - 1
    assert opened >= 3
    assert result["connections"]["opened_during_run"] == opened
    assert sum(t["opened"] for t in result["timeline"]) == opened
    assert rec.first.get_total_count() == opened  # each answered its one request
    # The per-second "settled" latencies leave those first requests out.
    settled = sum(sec.settled.get_total_count() for sec in rec.seconds.values())
    assert settled == rec.completed - opened
    assert rec.settled.get_total_count() == settled  # and so does the whole run's
    assert result["connections"]["settled_latency_ms"]["max"] <= result["latency_ms"]["max"]
    assert 0 < result["connections"]["first_request_ms"]["max"] <= result["service_ms"]["max"]


def test_server_closing_connections_costs_no_request(http_port: int) -> None:
    closing = (Payload(kind="valid", path="/close", body=b"{}"),)
    rec, _ = run(_cfg(http_port, payloads=closing, rate=100.0, duration_s=0.3, connections=2))
    assert rec.completed == 30
    assert rec.failed == 0


def test_unanswered_requests_time_out_and_count_as_failed(http_port: int) -> None:
    hang = (Payload(kind="valid", path="/hang", body=b"{}"),)
    rec, _ = run(_cfg(http_port, payloads=hang, rate=20.0, duration_s=0.25, timeout_s=0.2))
    assert rec.completed == 0
    assert dict(rec.errors) == {"timeout": 5}


def test_a_refused_connection_fails_each_request(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    rec, _ = run(_cfg(port, rate=20.0, duration_s=0.25))
    assert dict(rec.errors) == {"connect: ConnectionRefusedError": 5}


def test_cli_run_writes_json_and_plot(http_port: int, tmp_path: Path) -> None:
    payloads = tmp_path / "p.jsonl"
    write_payload_file(payloads, synthetic_payloads(fields=3, per_kind=2))
    out, plot = tmp_path / "r.json", tmp_path / "r.png"
    result = cli.invoke(
        app,
        [
            "loadtest",
            "run",
            f"http://127.0.0.1:{http_port}",
            "--rate",
            "100",
            "--duration",
            "0.3",
            "--payloads",
            str(payloads),
            "--mix",
            "valid=1,invalid=1",
            "--out",
            str(out),
            "--plot",
            str(plot),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "30 completed, 0 failed" in result.output
    data = json.loads(out.read_text())
    assert data["completed"] == 30
    assert set(data["latency_ms"]) == {"p50", "p90", "p99", "p99.9", "max", "mean"}
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_cli_max_prints_json(http_port: int) -> None:
    result = cli.invoke(
        app,
        [
            "loadtest",
            "max",
            f"http://127.0.0.1:{http_port}",
            "--connections",
            "2",
            "--duration",
            "0.2",
            "--fields",
            "5",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["mode"] == "closed"
    assert data["failed"] == 0


def test_cli_payloads_writes_a_reusable_file(tmp_path: Path) -> None:
    out = tmp_path / "gen.jsonl"
    result = cli.invoke(app, ["loadtest", "payloads", str(out), "--fields", "3", "--per-kind", "2"])
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote 6 payloads to {out}\n"
    assert len(out.read_text().splitlines()) == 6


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run", "http://192.0.2.1:80"],
            "error: target 'http://192.0.2.1:80': 192.0.2.1 is not a loopback address; "
            "pass --allow-remote to load it",
        ),
        (
            ["max", "http://127.0.0.1:1", "--mix", "nope=1"],
            "error: mix names kinds with no payload: nope (payload kinds: batch, invalid, valid)",
        ),
        (
            ["run", "http://127.0.0.1:1", "--payloads", "/nonexistent.jsonl"],
            "error: payload file /nonexistent.jsonl: No such file or directory",
        ),
        (
            ["run", "http://127.0.0.1:1", "--preopen", "100", "--connections", "64"],
            "error: --preopen 100 is more than --connections 64: the pool opened before the "
            "run is part of the most connections a process may open",
        ),
        (
            ["payloads", "/tmp/never-written.jsonl", "--shape", "xml"],
            "error: shape must be one of scorer, flat (got 'xml')",
        ),
    ],
)
def test_cli_errors_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = cli.invoke(app, ["loadtest", *args])
    assert result.exit_code == 2
    assert result.stderr.strip() == message
