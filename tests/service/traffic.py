"""Steady scoring traffic against a test server, every answer counted by transaction id."""

from __future__ import annotations

import threading

import httpx

from tests.factories import random_rows

ROWS = random_rows(n=16, seed=5)


class Traffic:
    """Threads sending valid scoring requests (ids ``<prefix><worker>-<n>``) until stopped.

    ``sent`` holds the ids answered 200, ``failures`` a line per other outcome.  ``pause``
    returns once no request is in progress; ``resume`` lets the threads go on.
    """

    def __init__(self, base_url: str, threads: int = 3, prefix: str = "w") -> None:
        self.sent: list[str] = []
        self.failures: list[str] = []
        self.versions: set[str] = set()
        self._base_url = base_url
        self._prefix = prefix
        self._stop = threading.Event()
        self._go = threading.Event()
        self._go.set()
        self._busy = 0
        self._idle = threading.Condition()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(n,)) for n in range(threads)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._go.set()
        for thread in self._threads:
            thread.join(30)

    def pause(self, timeout_s: float = 10.0) -> None:
        """Stop sending; return when every request in progress has been answered."""
        self._go.clear()
        with self._idle:
            self._idle.wait_for(lambda: self._busy == 0, timeout_s)

    def resume(self) -> None:
        self._go.set()

    def _run(self, worker: int) -> None:
        with httpx.Client(base_url=self._base_url, timeout=10.0) as client:
            n = 0
            while not self._stop.is_set():
                self._go.wait()
                with self._idle:
                    if not self._go.is_set():
                        continue
                    self._busy += 1
                try:
                    self._send(client, f"{self._prefix}{worker}-{n}", n)
                finally:
                    with self._idle:
                        self._busy -= 1
                        self._idle.notify_all()
                n += 1

    def _send(self, client: httpx.Client, tid: str, n: int) -> None:
        body = {"transaction_id": tid, "features": ROWS[n % len(ROWS)]}
        try:
            response = client.post("/v1/score", json=body)
            ok = response.status_code == 200
            detail = f"{tid}: {response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            ok, detail = False, f"{tid}: {exc!r}"
        with self._lock:
            if ok:
                self.sent.append(tid)
                self.versions.add(response.json()["model_version"])
            else:
                self.failures.append(detail)


def metric(client: httpx.Client, name: str) -> float:
    """A metric's value (unlabelled series) from the server's ``/metrics``."""
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")
