"""The one exception family of the load generator."""

from __future__ import annotations


class LoadTestError(Exception):
    """A load test cannot run as configured; the message names the option or file at fault."""
