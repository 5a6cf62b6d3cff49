"""Run records and the worker's health key, in Redis.

Each run leaves one JSON record under ``shadowline:retrain:run:<id>`` (kept for a quarter)
indexed by start time in ``shadowline:retrain:runs``; it is updated after every step, so a
crashed run still shows how far it got.  The health key carries a TTL: a worker that stops
ticking disappears from it, and ``shadowline retrain worker --check`` fails.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import redis

from retrain.constants import (
    HEALTH_KEY,
    LOCK_KEY,
    MAX_RUNS_KEPT,
    RUN_TTL_S,
    RUNS_INDEX,
    last_model_key,
    run_key,
)


@dataclass
class RunRecord:
    """What one run did: steps with timings, outcome and the one-line reason."""

    run_id: str
    model_name: str
    started_at: float
    as_of: str
    trigger: str
    steps: list[dict[str, Any]] = field(default_factory=list)
    outcome: str = "running"
    reason: str = ""
    finished_at: float | None = None
    model_version: str | None = None
    folder: str = ""


class RunStore:
    """Reads and writes run records, the lock, the health key and the last-model identity."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def save(self, record: RunRecord) -> None:
        pipe = self.client.pipeline()
        pipe.set(run_key(record.run_id), json.dumps(asdict(record)), ex=RUN_TTL_S)
        pipe.zadd(RUNS_INDEX, {record.run_id: record.started_at})
        pipe.zremrangebyrank(RUNS_INDEX, 0, -MAX_RUNS_KEPT - 1)
        pipe.execute()

    def get(self, run_id: str) -> RunRecord | None:
        raw = self.client.get(run_key(run_id))
        return None if raw is None else RunRecord(**json.loads(str(raw)))

    def recent(self, count: int = 10) -> list[RunRecord]:
        """The latest runs, newest first."""
        ids = self.client.zrevrange(RUNS_INDEX, 0, count - 1)
        found = (self.get(str(run_id)) for run_id in ids)
        return [record for record in found if record is not None]

    def acquire(self, run_id: str, ttl_s: int) -> str | None:
        """Take the one-run-at-a-time lock; returns the holder's run id if it is taken."""
        if self.client.set(LOCK_KEY, run_id, nx=True, ex=ttl_s):
            return None
        holder = self.client.get(LOCK_KEY)
        return str(holder) if holder is not None else "unknown"

    def extend(self, run_id: str, ttl_s: int) -> None:
        if self.client.get(LOCK_KEY) == run_id:
            self.client.expire(LOCK_KEY, ttl_s)

    def release(self, run_id: str) -> None:
        # Compare-and-delete in one script: never release a lock another run took over.
        script = (
            "if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('del', KEYS[1]) end return 0"
        )
        self.client.eval(script, 1, LOCK_KEY, run_id)

    def last_model(self, model_name: str) -> dict[str, Any] | None:
        raw = self.client.get(last_model_key(model_name))
        return None if raw is None else dict(json.loads(str(raw)))

    def set_last_model(self, model_name: str, value: dict[str, Any]) -> None:
        self.client.set(last_model_key(model_name), json.dumps(value))

    def beat(self, status: dict[str, Any], ttl_s: int) -> None:
        """Write the worker's health key (``worker --check`` reads it)."""
        self.client.set(HEALTH_KEY, json.dumps({**status, "at": time.time()}), ex=ttl_s)

    def health(self) -> dict[str, Any] | None:
        raw = self.client.get(HEALTH_KEY)
        return None if raw is None else dict(json.loads(str(raw)))
