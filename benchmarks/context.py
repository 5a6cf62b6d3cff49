"""What every bench step shares: the run's durations, its servers and stack, and the load
call that also measures the server's CPU time and (in pinned mode) keeps it on its core."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from benchmarks import cpustat
from benchmarks.affinity import Pinner, pinned
from benchmarks.load import load
from benchmarks.servers import Server
from benchmarks.tcpstat import Sampler


@dataclass(frozen=True)
class Durations:
    warm: float = 2.0
    calibrate: float = 3.0
    max: float = 6.0
    fixed: float = 6.0
    shadows: float = 8.0
    change: float = 9.0
    promotions: float = 16.0
    promotion_every: float = 5.0
    pinned: float = 6.0
    ramp_step: float = 3.0
    outage: float = 21.0
    outage_at: float = 5.0
    outage_for: float = 7.0
    profile: float = 8.0
    rest_step: float = 2.5


QUICK = Durations(
    warm=0.5,
    calibrate=0.5,
    max=1.0,
    fixed=1.0,
    shadows=1.0,
    change=3.0,
    promotions=3.0,
    promotion_every=1.0,
    pinned=1.0,
    ramp_step=1.0,
    outage=4.0,
    outage_at=1.0,
    outage_for=1.5,
    profile=2.0,
    rest_step=1.0,
)
SMOKE = Durations(
    warm=0.2,
    calibrate=0.3,
    max=0.3,
    fixed=0.3,
    shadows=0.3,
    change=1.5,
    promotions=1.0,
    promotion_every=0.5,
    pinned=0.3,
    ramp_step=0.3,
    outage=1.5,
    outage_at=0.3,
    outage_for=0.5,
    profile=1.0,
    rest_step=0.4,
)


@dataclass
class Context:
    args: argparse.Namespace
    durations: Durations
    servers: dict[str, Server]
    stack: Any = None
    isolate: bool = True  # each load in a process of its own (off for --smoke: seconds count)
    # Pinned mode: (server core, generator core), None when off or fewer than 2 cores.
    cores: tuple[frozenset[int], frozenset[int]] | None = None

    def load(self, url: str, server: str, **kw: Any) -> dict[str, Any]:
        """One load run, with the server's CPU time per completed request (also in the parts of
        :meth:`~benchmarks.servers.Server.cpu_parts`), the kernel's TCP
        retransmission counters (:mod:`benchmarks.tcpstat`) and the machine's busy and stolen
        CPU time (:mod:`benchmarks.cpustat`) over it."""
        before = self.servers[server].cpu_parts()
        cpu_sampler = Sampler(read=cpustat.read, counters=cpustat.COUNTERS, name="cpustat")
        with Sampler() as tcp, cpu_sampler as cpu:
            result = load(url, server, isolate=self.isolate, **kw)
        parts = {k: v - before[k] for k, v in self.servers[server].cpu_parts().items()}
        used = sum(parts.values())
        seconds = 1 + max((s["second"] for s in result.get("timeline", [])), default=-1)
        result["tcp"] = tcp.summary(result.get("started_wall"), seconds)
        result["cpu"] = cpu.summary(result.get("started_wall"), seconds)
        done = result["completed"]
        result["server_cpu_us_per_request"] = round(1e6 * used / done, 1) if done else None
        result["server_cpu_parts_us_per_request"] = (
            {k: round(1e6 * v / done, 1) for k, v in parts.items()} if done else None
        )
        return result

    @contextlib.contextmanager
    def pinned(self, server: str) -> Iterator[Pinner | None]:
        """While the block runs: ``server`` and its children on the server core; this
        process (so the generator processes it spawns, and py-spy) and the scorer's Redis
        and broker on the other.  Nothing happens when pinned mode is off."""
        if self.cores is None:
            yield None
            return
        server_core, generator_core = self.cores
        plan = {os.getpid(): generator_core, self.servers[server].proc.pid: server_core}
        if self.stack is not None:
            for comp in self.stack.stack.components():
                plan[comp.pid] = generator_core
            if self.stack.broker_proc is not None:  # restarted after the outage
                plan[self.stack.broker_proc.pid] = generator_core
        with pinned(plan) as pinner:
            yield pinner

    def pinned_load(self, server: str, **kw: Any) -> dict[str, Any]:
        """A load run against ``server`` in pinned mode; records how many threads had to be
        moved back onto their core during it (a respawned child, a thread pool)."""
        with self.pinned(server) as pinner:
            result = self.load(self.servers[server].url, server, **kw)
        result["repinned_threads"] = pinner.repins if pinner else None
        return result
