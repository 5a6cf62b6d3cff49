"""Helpers of the deployment tests: steady scoring traffic with every answer counted, a scorer
under that load, admin moves, and timing of "how long until it is so"."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import httpx

from registry import ModelRegistry
from registry.manifest import Scalar
from service.app import Components, create_app
from service.settings import ServiceSettings
from tests.factories import random_rows
from tests.service.server import serving

ADMIN_TOKEN = "test-admin-token"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ROWS = random_rows(n=64, seed=23)


def elapsed_until(
    condition: Callable[[], bool], timeout_s: float, step_s: float = 0.01
) -> float | None:
    """Seconds until ``condition`` holds (polled every ``step_s``); None after ``timeout_s``."""
    start = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            return None
        time.sleep(step_s)


def score(client: httpx.Client, tid: str = "probe", row: int = 0) -> dict[str, Any]:
    """One scoring request; its JSON answer (any non-200 fails the test)."""
    answer = client.post("/v1/score", json={"transaction_id": tid, "features": ROWS[row]})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


class Load:
    """Scoring traffic from ``threads`` threads, one request after another (``pause_s``
    between), until the block ends.  Counts each answer by status and model version; anything
    but a 200 (a refused connection, a reset, a 5xx) is a failure, kept with its detail."""

    def __init__(
        self,
        base_url: str,
        *,
        threads: int = 4,
        pause_s: float = 0.0,
        rows: Sequence[dict[str, Scalar]] = ROWS,
    ) -> None:
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()
        self.failures: list[str] = []
        self._base_url, self._pause_s, self._rows = base_url, pause_s, rows
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), name=f"load-{n}") for n in range(threads)
        ]

    @property
    def answered(self) -> int:
        with self._lock:
            return sum(self.statuses.values())

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _run(self, worker: int) -> None:
        with httpx.Client(base_url=self._base_url, timeout=10.0) as client:
            n = 0
            while not self._stop.is_set():
                tid = f"w{worker}-{n}"
                body = {"transaction_id": tid, "features": self._rows[n % len(self._rows)]}
                n += 1
                try:
                    answer = client.post("/v1/score", json=body)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.failures.append(f"{tid}: {exc!r}")
                    continue
                with self._lock:
                    self.statuses[answer.status_code] += 1
                    if answer.status_code == 200:
                        self.versions[answer.json()["model_version"]] += 1
                    else:
                        self.failures.append(f"{tid}: {answer.status_code} {answer.text[:200]}")
                if self._pause_s:
                    self._stop.wait(self._pause_s)


def scored(parts: Components, version: str) -> float:
    """Transactions the scorer scored with ``version`` in production."""
    value = parts.metrics.registry.get_sample_value
    return sum(
        value(
            "shadowline_decisions_total", {"role": "production", "version": version, "decision": d}
        )
        or 0.0
        for d in ("allow", "review", "block")
    )


@contextmanager
def loaded_scorer(
    registry: ModelRegistry, settings: ServiceSettings
) -> Iterator[tuple[httpx.Client, Components, Load]]:
    """A scorer with v1 in production under load, once v1 scored enough to be the reference."""
    app = create_app(settings, registry)
    parts: Components = app.state.components
    with serving(app) as client, Load(str(client.base_url), threads=4) as load:
        assert elapsed_until(lambda: scored(parts, "v1") >= 2 * settings.guard_min_requests, 60)
        yield client, parts, load


def promote(client: httpx.Client, version: str) -> None:
    """Approve (forced) and promote ``version`` through the admin API."""
    for move, body in (
        ("approve", {"actor": "ana", "reason": "test", "force": True}),
        ("promote", {"actor": "ana", "reason": "test"}),
    ):
        answer = client.post(f"/admin/models/{version}/{move}", json=body, headers=ADMIN)
        assert answer.status_code == 200, answer.text
