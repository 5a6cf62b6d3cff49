"""`shadowline loadtest ...`: open-loop and closed-loop HTTP load against a local server.

A command that cannot run raises :class:`loadtest.errors.LoadTestError`; ``shadowline.cli``
mounts these commands with the shared error handling (one ``error:`` line, exit 2), since
loadtest imports nothing of ours.  Keep module-level imports light: `shadowline stack status`
imports this module too.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from loadtest.payloads import Payload
    from loadtest.runner import RunConfig

app = typer.Typer(no_args_is_help=True)

Url = Annotated[str, typer.Argument(help="http://host:port of the server (loopback only).")]
Duration = Annotated[
    float, typer.Option("--duration", min=0.1, max=3600.0, help="Seconds of load.")
]
MaxRequests = Annotated[
    int, typer.Option("--max-requests", min=1, max=10_000_000, help="Stop after this many.")
]
Procs = Annotated[int, typer.Option("--procs", min=1, max=32, help="Generator processes.")]
Timeout = Annotated[
    float, typer.Option("--timeout", min=0.01, max=120.0, help="Seconds before a request fails.")
]
PayloadFile = Annotated[
    Path | None, typer.Option("--payloads", help="JSON Lines payload file (see docs).")
]
Fields = Annotated[
    int, typer.Option("--fields", min=2, max=1000, help="Generated payloads: float inputs.")
]
Shape = Annotated[
    str,
    typer.Option(
        "--shape", help="Generated payloads: 'scorer' (transaction_id + features) or 'flat'."
    ),
]
Mix = Annotated[str, typer.Option("--mix", help="Weights by payload kind, e.g. valid=9,invalid=1.")]
Out = Annotated[Path | None, typer.Option("--out", help="Write the JSON result here.")]
Plot = Annotated[Path | None, typer.Option("--plot", help="Write a latency-over-time PNG here.")]
AllowRemote = Annotated[
    bool, typer.Option("--allow-remote", help="Allow a target that is not a loopback address.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print the JSON result.")]


def _payloads(path: Path | None, fields: int, shape: str) -> list[Payload]:
    from loadtest.payloads import load_payload_file, synthetic_payloads

    if path is not None:
        return load_payload_file(path)
    return synthetic_payloads(fields=fields, shape=shape)


def _execute(cfg: RunConfig, out: Path | None, plot: Path | None, as_json: bool) -> None:
    from loadtest.parallel import run
    from loadtest.report import build_result, plot_timelines, write_result

    began = time.perf_counter()
    rec, _ = run(cfg)
    result = build_result(cfg, rec, time.perf_counter() - began)
    if out is not None:
        write_result(result, out)
    if plot is not None:
        plot_timelines({cfg.mode: result["timeline"]}, plot, f"{cfg.mode} loop, {result['target']}")
    if as_json:
        typer.echo(json.dumps(result))
    else:
        _print_summary(result)


def _print_summary(result: dict[str, Any]) -> None:
    lat = result["latency_ms"]
    typer.echo(
        f"{result['completed']} completed, {result['failed']} failed, "
        f"{result['rate_achieved']} req/s; status {result['by_status']}"
    )
    typer.echo(
        "latency ms: "
        + ", ".join(f"{k} {lat[k]:.3f}" for k in ("p50", "p90", "p99", "p99.9", "max"))
    )
    if result["errors"]:
        typer.echo(f"errors: {result['errors']}")
    typer.echo(f"generator behind schedule by at most {result['generator']['behind_max_ms']} ms")


def _config(url: str, allow_remote: bool, payloads: list[Payload], mix: str, **kw: Any) -> Any:
    from loadtest.payloads import encode_payloads, parse_mix
    from loadtest.runner import RunConfig
    from loadtest.target import parse_target

    target = parse_target(url, allow_remote=allow_remote)
    weights = parse_mix(mix)
    encode_payloads(payloads, weights, target.authority)  # fails early on a bad mix
    return RunConfig(target=target, payloads=tuple(payloads), mix=weights, **kw)


@app.command("run")
def run_open(
    url: Url,
    rate: Annotated[
        float, typer.Option("--rate", min=0.1, max=1_000_000.0, help="Requests per second.")
    ] = 100.0,
    duration: Duration = 10.0,
    max_requests: MaxRequests = 1_000_000,
    connections: Annotated[
        int, typer.Option("--connections", min=1, max=4096, help="Most connections per proc.")
    ] = 64,
    preopen: Annotated[
        int | None,
        typer.Option(
            "--preopen",
            min=1,
            max=4096,
            help="Connections per proc opened before the run (default 16, at most "
            "--connections); size it for the peak.",
        ),
    ] = None,
    procs: Procs = 1,
    timeout: Timeout = 10.0,
    payloads: PayloadFile = None,
    fields: Fields = 30,
    shape: Shape = "scorer",
    mix: Mix = "valid=1",
    out: Out = None,
    plot: Plot = None,
    allow_remote: AllowRemote = False,
    as_json: AsJson = False,
) -> None:
    """Open loop: send at a constant rate; latency counts from each request's due time."""
    if preopen is not None and preopen > connections:
        from loadtest.errors import LoadTestError

        raise LoadTestError(
            f"--preopen {preopen} is more than --connections {connections}: the pool opened "
            "before the run is part of the most connections a process may open"
        )
    cfg = _config(
        url,
        allow_remote,
        _payloads(payloads, fields, shape),
        mix,
        mode="open",
        rate=rate,
        duration_s=duration,
        max_requests=max_requests,
        connections=connections,
        procs=procs,
        **({} if preopen is None else {"preopen": preopen}),
        timeout_s=timeout,
    )
    _execute(cfg, out, plot, as_json)


@app.command("max")
def run_closed(
    url: Url,
    connections: Annotated[
        int, typer.Option("--connections", min=1, max=4096, help="Connections per process.")
    ] = 16,
    duration: Duration = 10.0,
    max_requests: MaxRequests = 10_000_000,
    procs: Procs = 1,
    timeout: Timeout = 10.0,
    payloads: PayloadFile = None,
    fields: Fields = 30,
    shape: Shape = "scorer",
    mix: Mix = "valid=1",
    out: Out = None,
    plot: Plot = None,
    allow_remote: AllowRemote = False,
    as_json: AsJson = False,
) -> None:
    """Closed loop (max throughput): each connection sends again as soon as answered."""
    cfg = _config(
        url,
        allow_remote,
        _payloads(payloads, fields, shape),
        mix,
        mode="closed",
        duration_s=duration,
        max_requests=max_requests,
        connections=connections,
        procs=procs,
        timeout_s=timeout,
    )
    _execute(cfg, out, plot, as_json)


@app.command("payloads")
def write_payloads(
    out: Annotated[Path, typer.Argument(help="JSON Lines file to write.")],
    fields: Fields = 30,
    shape: Shape = "scorer",
    per_kind: Annotated[int, typer.Option("--per-kind", min=1, max=100_000)] = 64,
) -> None:
    """Write generated valid/invalid/batch payloads to a file, to edit or reuse."""
    from loadtest.payloads import synthetic_payloads, write_payload_file

    payloads = synthetic_payloads(fields=fields, shape=shape, per_kind=per_kind)
    write_payload_file(out, payloads)
    typer.echo(f"wrote {len(payloads)} payloads to {out}")
