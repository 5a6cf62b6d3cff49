"""Open-loop HTTP load generation (talks HTTP only; imports nothing else of Shadowline).

Public names: :class:`RunConfig`, :func:`run` (all processes, merged), :func:`build_result`,
:class:`Recorder`, the payload helpers and :func:`parse_target`.
"""

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

__all__ = [
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
