"""The bench's TCP counters: parsed from the kernel's table, and put in the run's seconds."""

from __future__ import annotations

import socket
from pathlib import Path

from benchmarks import tcpstat
from benchmarks.report import in_second

NETSTAT = (
    "TcpExt: SyncookiesSent TCPLossProbes TCPTimeouts TCPSpuriousRtxHostQueues DelayedACKs "
    "TCPBacklogDrop ListenOverflows\n"
    "TcpExt: 0 7 3 2 40 1 5\n"
    "IpExt: InNoRoutes TCPTimeouts\n"
    "IpExt: 0 99\n"
)


def test_the_counters_come_from_the_tcpext_rows(tmp_path: Path) -> None:
    path = tmp_path / "netstat"
    path.write_text(NETSTAT)
    assert tcpstat.read(path) == {
        "TCPTimeouts": 3,
        "TCPSpuriousRtxHostQueues": 2,
        "TCPLossProbes": 7,
        "TCPLossProbeRecovery": 0,  # not in this kernel's table: 0
        "TCPBacklogDrop": 1,
        "TCPRcvQDrop": 0,
        "ListenOverflows": 5,
        "DelayedACKs": 40,
    }
    assert tcpstat.read(tmp_path / "missing") is None


def test_what_changed_is_put_in_the_second_of_the_reading_that_saw_it() -> None:
    sampler = tcpstat.Sampler()
    zero = dict.fromkeys(tcpstat.COUNTERS, 0)
    sampler.samples = [
        (100.0, zero),
        (100.5, zero),
        (102.3, {**zero, "TCPTimeouts": 1, "TCPLossProbes": 4}),
        (102.9, {**zero, "TCPTimeouts": 1, "TCPLossProbes": 5}),
        (104.0, {**zero, "TCPTimeouts": 2, "TCPLossProbes": 5}),  # past the run: the last second
    ]
    summary = sampler.summary(started_wall=100.2, seconds=3)
    assert summary is not None
    assert summary["total"] == {**zero, "TCPTimeouts": 2, "TCPLossProbes": 5}
    assert summary["per_second"]["TCPTimeouts"] == [0, 0, 2]
    assert summary["per_second"]["TCPLossProbes"] == [0, 0, 5]
    assert in_second(summary, 2) == {**zero, "TCPTimeouts": 2, "TCPLossProbes": 5}
    assert in_second(summary, 7) == {}
    assert in_second(None, 0) is None


def test_a_run_on_this_machine_reads_the_live_counters() -> None:
    """On Linux the sampler reads the real table around a run (here, one loopback exchange)."""
    if tcpstat.read() is None:
        return  # not Linux: the bench reports "not read"
    with tcpstat.Sampler(every_s=0.01) as sampler:
        server = socket.create_server(("127.0.0.1", 0))
        with server, socket.create_connection(server.getsockname()) as client:
            peer, _ = server.accept()
            with peer:
                client.sendall(b"x")
                assert peer.recv(1) == b"x"
    assert len(sampler.samples) >= 2
    summary = sampler.summary(started_wall=None, seconds=0)
    assert summary is not None
    assert all(v >= 0 for v in summary["total"].values())


def test_the_worst_second_table_sums_the_drops() -> None:
    from benchmarks.render_bounds import _tcp

    second = {"TCPTimeouts": 1, "TCPLossProbes": 2, "DelayedACKs": 40}
    second |= {"TCPBacklogDrop": 1, "TCPRcvQDrop": 2, "ListenOverflows": 3}
    assert _tcp(second) == "1 (0), 2, 6, 40"
    assert _tcp(None) == "not read"
