"""Rows of the fault matrix about load itself: abusive bodies beside normal traffic, and the
long soak with promotions.  Each is one function of :class:`benchmarks.faults.Env` returning a
:class:`benchmarks.faults.Row`."""

from __future__ import annotations

import contextlib
import select
import socket
import statistics
import threading
import time
import urllib.parse
from typing import Any

from benchmarks.fault_kills import NO_FAILURES, _answered, _load_text, _readyz, _sleep_until
from benchmarks.faults import Env, Row
from benchmarks.model import FIELD_NAMES
from benchmarks.watch import Delivery, rss_mb

SENDER_PERIOD_S = 0.05  # 20 abusive bodies a second per sender, about what three senders got
# through before the limits (issue #11: each body took tens of milliseconds to be accepted)
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _short_key(n: int) -> str:
    key = ""
    while True:
        n, digit = divmod(n, len(_DIGITS))
        key = _DIGITS[digit] + key
        if n == 0:
            return "_" + key


def unknown_fields_body(n: int = 100_000) -> bytes:
    """A valid transaction plus ``n`` unknown fields: about 800 KB for 100,000."""
    fields = ",".join(f'"{name}":0.5' for name in FIELD_NAMES)
    extra = ",".join(f'"{_short_key(i)}":0' for i in range(n))
    return f'{{"transaction_id":"abuse","features":{{{fields},{extra}}}}}'.encode()


def _post(url: str, body: bytes, headers: dict[str, str] | None = None) -> str:
    """POST ``body`` in 1 MiB pieces, watching for an early answer between them: a server that
    refuses a body unread answers before it has all of it and closes the connection (a client
    that sends everything first sees only a broken pipe).  Returns the status, with "early"
    when it came before the whole body was sent, or the error's name without any answer."""
    parts = urllib.parse.urlsplit(url)
    head = (
        f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        + "\r\n"
    ).encode()
    with socket.create_connection((parts.hostname, parts.port), timeout=60) as sock:
        try:
            sock.sendall(head)
            for at in range(0, len(body), 1 << 20):
                if select.select([sock], [], [], 0)[0]:
                    return _status(sock) + " early"
                sock.sendall(body[at : at + (1 << 20)])
        except OSError as exc:  # reset or broken pipe: the answer may still be readable
            with contextlib.suppress(OSError):
                return _status(sock) + " early"
            return type(exc).__name__
        return _status(sock)


def _status(sock: socket.socket) -> str:
    line = sock.makefile("rb").readline().decode(errors="replace").split()
    if len(line) < 2:
        raise ConnectionError("no answer")
    return line[1]


def abusive_bodies(env: Env) -> Row:
    d = env.durations
    row = Row(
        name="abusive_bodies",
        fault="beside normal load: 3 senders of ~800 KB bodies with 100,000 unknown fields "
        f"(/v1/score), {1 / SENDER_PERIOD_S:.0f} a second each, and 4 concurrent 100 MB POSTs "
        "without a token (/admin)",
        load=_load_text(env, d.abusive) + ", after a baseline run of the same",
        must_hold=[
            NO_FAILURES,
            "unknown-field bodies refused with 413 or 422",
            "unauthenticated 100 MB admin bodies refused (401) before they are read",
            "normal requests' p99 within 2x the baseline's",
            "the scorer's memory grows by less than 100 MiB",
        ],
    )
    baseline = env.load(d.abusive)
    wide = unknown_fields_body()
    huge = b'{"actor": "' + b"x" * (100 << 20)  # malformed too: refused for the token first
    answers: dict[str, list[str]] = {"score": [], "admin": []}
    rss = [rss_mb(env.scorer.proc.pid)]
    done = threading.Event()

    def sample_rss() -> None:
        while not done.wait(0.2):
            rss.append(rss_mb(env.scorer.proc.pid))

    def abuse(t0: float) -> list[dict[str, Any]]:
        _sleep_until(t0 + 1.0)
        sampler = threading.Thread(target=sample_rss, daemon=True)
        sampler.start()

        def score_sender() -> None:
            # Each sender sends one body every SENDER_PERIOD_S, however fast it is refused:
            # refused at once, closed-loop senders turn into a flood of cheap requests, a
            # volume problem a rate limit at the load balancer answers; this row checks that
            # abusive content costs normal requests nothing.
            next_at = time.monotonic()
            while time.monotonic() < t0 + d.abusive - 1.0:
                answers["score"].append(_post(f"{env.url}/v1/score", wide))
                next_at += SENDER_PERIOD_S
                time.sleep(max(0.0, next_at - time.monotonic()))

        def admin_sender() -> None:
            answers["admin"].append(_post(f"{env.url}/admin/models/v1/approve", huge))

        threads = [threading.Thread(target=score_sender) for _ in range(3)]
        threads += [threading.Thread(target=admin_sender) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        done.set()
        sampler.join(5)
        return []

    result = env.load(d.abusive, abuse)
    row.data.update(
        baseline=baseline, load=result, answers=answers, rss_mb={"before": rss[0], "peak": max(rss)}
    )
    row.check(
        f"{result['failed']} of {result['requests']} normal requests failed", result["failed"] == 0
    )
    score = sorted(set(answers["score"]))
    row.check(
        f"{len(answers['score'])} unknown-field bodies answered {score}",
        bool(score) and {a.split()[0] for a in score} <= {"413", "422"},
    )
    admin = sorted(set(answers["admin"]))
    row.check(f"100 MB admin bodies answered {admin}", set(admin) == {"401 early"})
    p99, base = result["latency_ms"]["p99"], baseline["latency_ms"]["p99"]
    row.check(f"normal p99 {p99:.1f} ms against {base:.1f} ms without abuse", p99 <= 2 * base)
    growth = max(rss) - rss[0]
    row.check(
        f"scorer memory {rss[0]:.0f} MiB, peak {max(rss):.0f} MiB (+{growth:.0f})", growth < 100
    )
    return row


def soak(env: Env) -> Row:
    d = env.durations
    minutes = d.soak / 60
    row = Row(
        name="soak",
        fault=f"{minutes:g} minute{'s' if minutes != 1 else ''} of load with a promotion "
        f"every {d.promote_every:.0f} s, on a freshly started scorer",
        load=_load_text(env, d.soak),
        must_hold=[
            NO_FAILURES,
            "every promotion is served within 2 s",
            "memory flat: the last sixth's median within 10% of the second sixth's",
            "every answered request's record arrives, once",
        ],
    )
    env.restart_scorer()  # memory measured from its start, not after the rows before
    mark = env.watcher.count()
    samples: list[tuple[float, float]] = []
    promotions: list[dict[str, Any]] = []

    def promote_and_sample(t0: float) -> list[dict[str, Any]]:
        next_promotion = t0 + d.promote_every
        while time.monotonic() < t0 + d.soak - 1.0:
            samples.append((time.monotonic() - t0, rss_mb(env.scorer.proc.pid)))
            if time.monotonic() >= next_promotion:
                version = env.stack.promote_next()
                began = time.monotonic()
                served = None
                while time.monotonic() < began + 2.0:
                    if (_readyz(env).get("production") or {}).get("version") == version:
                        served = round(time.monotonic() - began, 2)
                        break
                    time.sleep(0.05)
                promotions.append({"version": version, "served_after_s": served})
                next_promotion += d.promote_every
            time.sleep(1.0)
        return []

    result = env.load(d.soak, promote_and_sample)
    row.data.update(load=result, promotions=promotions, rss_mb=samples)
    row.check(f"{result['failed']} of {result['requests']} requests failed", result["failed"] == 0)
    late = [p for p in promotions if p["served_after_s"] is None]
    row.check(
        f"{len(promotions)} promotions, {len(late)} not served within 2 s",
        bool(promotions) and not late,
    )
    sixth = d.soak / 6
    early = [mb for t, mb in samples if sixth <= t < 2 * sixth]
    last = [mb for t, mb in samples if t >= 5 * sixth]
    if early and last:
        first_mb, last_mb = statistics.median(early), statistics.median(last)
        row.check(
            f"scorer + sidecar memory {first_mb:.0f} MiB -> {last_mb:.0f} MiB "
            f"({100 * (last_mb / first_mb - 1):+.1f}%)",
            last_mb <= 1.10 * first_mb,
        )
    else:
        row.check("too few memory samples", False)
    drained = env.drain()
    delivery = Delivery.of(_answered(result), env.watcher.since(mark))
    row.data["records"] = delivery.as_dict()
    row.check(
        f"{delivery.answered} answered, {delivery.seen} records, {delivery.lost} lost, "
        f"{delivery.duplicates} sent twice",
        drained and delivery.lost == 0 and delivery.duplicates == 0,
    )
    return row
