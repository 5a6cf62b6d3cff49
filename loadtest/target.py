"""Where the load goes: a plain ``http://host:port`` origin, loopback unless allowed.

A load generator pointed at the wrong host is a denial-of-service tool, so anything but a
loopback address is refused unless the caller says ``allow_remote``.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from loadtest.errors import LoadTestError

LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass(frozen=True)
class Target:
    """An HTTP/1.1 origin (no TLS): host, port and the Host header value."""

    host: str
    port: int

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and for IPv4/IPv6 loopback addresses."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_target(url: str, *, allow_remote: bool = False) -> Target:
    """Parse ``http://host:port`` (a path, if any, is ignored: payloads carry their paths).

    Raises :class:`LoadTestError` for another scheme, a missing host, or a non-loopback host
    without ``allow_remote``.
    """
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise LoadTestError(f"target {url!r}: only http:// is supported (got {parts.scheme!r})")
    host = parts.hostname
    if not host:
        raise LoadTestError(f"target {url!r}: no host")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise LoadTestError(f"target {url!r}: bad port ({exc})") from None
    if not allow_remote and not is_loopback(host):
        raise LoadTestError(
            f"target {url!r}: {host} is not a loopback address; pass --allow-remote to load it"
        )
    return Target(host=host, port=port)
