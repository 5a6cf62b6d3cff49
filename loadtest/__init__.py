"""Open-loop HTTP load generation (talks HTTP only; imports nothing else of Shadowline).

Public names: :class:`RunConfig`, :func:`run` (all processes, merged), :func:`build_result`,
:class:`Recorder`, the payload helpers and :func:`parse_target`.

They are imported on first use, not with the package: ``shadowline`` mounts
:mod:`loadtest.cli` in every image, and the scorer's and the worker's images do not carry the
generator's own dependencies (hdrhistogram).  Importing the package, or its ``cli`` module,
must not need them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from loadtest.errors import LoadTestError
    from loadtest.parallel import run
    from loadtest.payloads import (
        Payload,
        encode_payloads,
        load_payload_file,
        parse_mix,
        synthetic_payloads,
        write_payload_file,
    )
    from loadtest.report import build_result, plot_timelines, write_result
    from loadtest.runner import RunConfig
    from loadtest.stats import Recorder, summarize
    from loadtest.target import Target, parse_target

# Each public name and the module it lives in.
_HOMES = {
    "LoadTestError": "errors",
    "run": "parallel",
    "Payload": "payloads",
    "encode_payloads": "payloads",
    "load_payload_file": "payloads",
    "parse_mix": "payloads",
    "synthetic_payloads": "payloads",
    "write_payload_file": "payloads",
    "build_result": "report",
    "plot_timelines": "report",
    "write_result": "report",
    "RunConfig": "runner",
    "Recorder": "stats",
    "summarize": "stats",
    "Target": "target",
    "parse_target": "target",
}

__all__ = [  # as _HOMES (spelled out: type checkers and linters read __all__ as written)
    "LoadTestError",
    "Payload",
    "Recorder",
    "RunConfig",
    "Target",
    "build_result",
    "encode_payloads",
    "load_payload_file",
    "parse_mix",
    "parse_target",
    "plot_timelines",
    "run",
    "summarize",
    "synthetic_payloads",
    "write_payload_file",
    "write_result",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'loadtest' has no attribute {name!r}")
    return getattr(importlib.import_module(f"loadtest.{home}"), name)
