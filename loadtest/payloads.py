"""What the generator sends: payloads of named kinds, a weighted mix, pre-encoded requests.

A payload file is JSON Lines, one request per line::

    {"kind": "valid", "path": "/v1/score", "body": {...}}
    {"kind": "invalid", "path": "/v1/score", "body": {...}, "expect": "4xx"}

``method`` defaults to POST, ``expect`` to ``2xx`` (``4xx`` for kind ``invalid``).  Requests are
encoded to HTTP/1.1 bytes once, before the run, so sending one costs a ``transport.write``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.errors import LoadTestError

MIX_TABLE_SIZE = 4096  # the cyclic sequence of payload picks; long enough to look random
DEFAULT_EXPECT = {"invalid": 4}
SHAPES = ("scorer", "flat")


@dataclass(frozen=True)
class Payload:
    """One request: its kind (for the mix and the counts), method, path, JSON body."""

    kind: str
    path: str
    body: bytes
    method: str = "POST"
    expect_class: int = 2  # the status class (2 = 2xx) that counts as the expected answer

    def encode(self, authority: str) -> bytes:
        """The full HTTP/1.1 request, keep-alive, with Content-Length."""
        head = (
            f"{self.method} {self.path} HTTP/1.1\r\nHost: {authority}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\n\r\n"
        )
        return head.encode("ascii") + self.body


@dataclass(frozen=True)
class EncodedPayloads:
    """Payloads with their request bytes and a pre-drawn cyclic pick sequence."""

    payloads: tuple[Payload, ...]
    requests: tuple[bytes, ...]
    picks: tuple[int, ...] = field(repr=False)

    def pick(self, i: int) -> int:
        """The payload index for request number ``i``."""
        return self.picks[i % len(self.picks)]


def _compact(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _expect(kind: str, raw: object, where: str) -> int:
    if raw is None:
        return DEFAULT_EXPECT.get(kind, 2)
    if not isinstance(raw, str) or len(raw) != 3 or raw[0] not in "2345" or raw[1:] != "xx":
        raise LoadTestError(f"{where}: expect must be one of 2xx, 3xx, 4xx, 5xx (got {raw!r})")
    return int(raw[0])


def parse_payload_line(line: str, where: str) -> Payload:
    """One JSON Lines record to a :class:`Payload`; errors name ``where`` (file:line)."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise LoadTestError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(record, dict):
        raise LoadTestError(f"{where}: a payload must be a JSON object")
    kind, path = record.get("kind"), record.get("path")
    if not isinstance(kind, str) or not kind:
        raise LoadTestError(f"{where}: 'kind' must be a non-empty string")
    if not isinstance(path, str) or not path.startswith("/"):
        raise LoadTestError(f"{where}: 'path' must be a string starting with '/'")
    if "body" not in record:
        raise LoadTestError(f"{where}: 'body' is missing")
    method = record.get("method", "POST")
    if method not in ("POST", "PUT", "GET"):
        raise LoadTestError(f"{where}: method must be POST, PUT or GET (got {method!r})")
    body = _compact(record["body"])
    return Payload(
        kind=kind,
        path=path,
        body=body,
        method=method,
        expect_class=_expect(kind, record.get("expect"), where),
    )


def load_payload_file(path: Path) -> list[Payload]:
    """Every payload in a JSON Lines file (blank lines skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LoadTestError(f"payload file {path}: {exc.strerror}") from None
    payloads = [
        parse_payload_line(line, f"{path}:{n}")
        for n, line in enumerate(text.splitlines(), start=1)
        if line.strip()
    ]
    if not payloads:
        raise LoadTestError(f"payload file {path}: no payloads")
    return payloads


def write_payload_file(path: Path, payloads: Sequence[Payload]) -> None:
    """Write ``payloads`` as JSON Lines that :func:`load_payload_file` reads back."""
    lines = []
    for p in payloads:
        record = {"kind": p.kind, "method": p.method, "path": p.path}
        record["expect"] = f"{p.expect_class}xx"
        lines.append(json.dumps({**record, "body": json.loads(p.body)}, separators=(",", ":")))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def parse_mix(spec: str) -> dict[str, float]:
    """``"valid=90,invalid=5,batch=5"`` -> weights by kind (any non-negative numbers)."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        kind, sep, weight = part.partition("=")
        try:
            value = float(weight) if sep else -1.0
        except ValueError:
            value = -1.0
        if not kind or value < 0:
            raise LoadTestError(f"mix {spec!r}: expected kind=weight pairs, got {part!r}")
        mix[kind] = value
    if not mix or sum(mix.values()) <= 0:
        raise LoadTestError(f"mix {spec!r}: the weights must add up to more than 0")
    return mix


def encode_payloads(
    payloads: Sequence[Payload], mix: Mapping[str, float] | None, authority: str, seed: int = 0
) -> EncodedPayloads:
    """Encode every payload and draw the pick sequence: a kind by ``mix`` weight, then a
    payload of that kind uniformly.  ``mix`` None weighs each payload equally.

    Raises :class:`LoadTestError` when the mix names a kind with no payload.
    """
    if not payloads:
        raise LoadTestError("no payloads to send")
    by_kind: dict[str, list[int]] = {}
    for i, p in enumerate(payloads):
        by_kind.setdefault(p.kind, []).append(i)
    rng = random.Random(seed)  # noqa: S311 - reproducible picks, not security
    if mix is None:
        picks = [rng.randrange(len(payloads)) for _ in range(MIX_TABLE_SIZE)]
    else:
        weighted = {k: w for k, w in mix.items() if w > 0}
        missing = sorted(set(weighted) - set(by_kind))
        if missing:
            raise LoadTestError(
                f"mix names kinds with no payload: {', '.join(missing)} "
                f"(payload kinds: {', '.join(sorted(by_kind))})"
            )
        kinds = list(weighted)
        chosen = rng.choices(kinds, weights=[weighted[k] for k in kinds], k=MIX_TABLE_SIZE)
        picks = [rng.choice(by_kind[k]) for k in chosen]
    return EncodedPayloads(
        payloads=tuple(payloads),
        requests=tuple(p.encode(authority) for p in payloads),
        picks=tuple(picks),
    )


def synthetic_payloads(
    *,
    fields: int = 30,
    shape: str = "scorer",
    path: str = "/v1/score",
    batch_path: str = "/v1/score/batch",
    batch_size: int = 10,
    per_kind: int = 64,
    seed: int = 0,
) -> list[Payload]:
    """Generated payloads over ``fields`` float inputs named f00, f01, ...: ``valid`` ones,
    ``invalid`` ones (one field a string, one missing; expect 4xx) and ``batch`` ones of
    ``batch_size`` rows.

    ``shape`` ``scorer`` is the Shadowline scorer's request: ``{"transaction_id": "tx-..",
    "features": {row}}``, a batch ``{"transactions": [...]}``; ``flat`` sends the row itself
    and a batch as ``{"rows": [...]}``.
    """
    if fields < 2:
        raise LoadTestError(f"fields must be at least 2 (got {fields})")
    if shape not in SHAPES:
        raise LoadTestError(f"shape must be one of {', '.join(SHAPES)} (got {shape!r})")
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    names = [f"f{i:02d}" for i in range(fields)]
    counter = 0

    def wrap(row: dict[str, object]) -> dict[str, object]:
        nonlocal counter
        counter += 1
        return (
            {"transaction_id": f"tx-{seed}-{counter}", "features": row}
            if shape == "scorer"
            else row
        )

    def row() -> dict[str, object]:
        return {n: round(rng.random(), 6) for n in names}

    batch_key = "transactions" if shape == "scorer" else "rows"
    out = []
    for _ in range(per_kind):
        out.append(Payload(kind="valid", path=path, body=_compact(wrap(row()))))
        bad = row()
        bad[names[0]] = "not-a-number"
        del bad[names[1]]
        out.append(Payload(kind="invalid", path=path, body=_compact(wrap(bad)), expect_class=4))
        batch = {batch_key: [wrap(row()) for _ in range(batch_size)]}
        out.append(Payload(kind="batch", path=batch_path, body=_compact(batch)))
    return out
