"""Rows of the fault matrix about models and the registry: corrupt and missing artifacts,
concurrent and interrupted promotions.  Each is one function of
:class:`benchmarks.faults.Env` returning a :class:`benchmarks.faults.Row`."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from benchmarks.fault_kills import NO_FAILURES, _load_text, _sleep_until
from benchmarks.faults import ADMIN, Env, Row
from benchmarks.load import payloads
from benchmarks.servers import wait_for_scorer
from benchmarks.stack import MODEL_NAME

APPROVE = {"actor": "reliability", "reason": "fault matrix", "force": True}
PROMOTE = {"actor": "reliability", "reason": "fault matrix"}


def _artifact(env: Env, version: str) -> Path:
    """Where the registry's file store keeps ``version``'s artifact (content-addressed)."""
    sha = str(env.stack.registry.manifest(MODEL_NAME, version).sha256)
    return Path(str(env.env["SHADOWLINE_ARTIFACT_DIR"])) / sha[:2] / sha


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def _remove(path: Path) -> None:
    path.unlink()


def _productions(env: Env) -> list[str]:
    return [s.version for s in env.stack.registry.list(MODEL_NAME) if s.state.value == "production"]


def _admin(env: Env, version: str, action: str) -> tuple[int, str]:
    body = APPROVE if action == "approve" else PROMOTE
    answer = httpx.post(
        f"{env.url}/admin/models/{version}/{action}", json=body, headers=ADMIN, timeout=30.0
    )
    return answer.status_code, answer.text[:200]


def _score_once(env: Env) -> int:
    payload = payloads("scorer")[0]
    answer = httpx.post(
        f"{env.url}{payload.path}",
        content=payload.body,
        timeout=10.0,
        headers={"Content-Type": "application/json"},
    )
    return answer.status_code


def _restart_and_probe(env: Env, timeout_s: float = 20.0) -> dict[str, Any]:
    """Restart the scorer (SIGTERM) and, without requiring it to become ready, report what
    /readyz and one scoring request answer."""
    from benchmarks.servers import start

    env.scorer.stop()
    env.scorer = start("scorer", env.scorer.cmd, env.work, "/readyz", env.env)
    deadline = time.monotonic() + timeout_s
    status, body = 0, b""
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            status, body = env.scorer.get("/readyz")
            if status == 200:
                break
        time.sleep(0.3)
    import json

    readyz = json.loads(body) if body else {}
    return {
        "readyz_status": status,
        "degraded": readyz.get("degraded"),
        "score_status": _score_once(env) if status else 0,
    }


def _artifact_row(env: Env, name: str, what: str, damage: Callable[[Path], None]) -> Row:
    """The candidate's artifact damaged, then production's: see the two rows below."""
    d = env.durations
    row = Row(
        name=name,
        fault=f"{what} artifact: a candidate's, then production's",
        load=_load_text(env, d.load) + " during the candidate's approval and promotion",
        must_hold=[
            NO_FAILURES,
            "approving or promoting the candidate is refused (4xx) with the reason; "
            "production does not change",
            "with production's own artifact damaged, a restarted scorer still scores (its "
            "last-known-good copy): /v1/score 200, /readyz 200 and `degraded` names the "
            "registry's and the served version",
        ],
    )
    registry = env.stack.registry
    production = registry.deployment(MODEL_NAME).production
    candidate = env.stack.spare.pop(0)
    saved = {v: _artifact(env, v).read_bytes() for v in (candidate, production)}
    answers: dict[str, tuple[int, str]] = {}

    def attempt(t0: float) -> list[dict[str, Any]]:
        _sleep_until(t0 + d.fault_at)
        damage(_artifact(env, candidate))
        answers["approve"] = _admin(env, candidate, "approve")
        answers["promote"] = _admin(env, candidate, "promote")
        return []

    try:
        result = env.load(d.load, attempt)
        row.data.update(load=result, answers=answers)
        row.check(
            f"{result['failed']} of {result['requests']} requests failed", result["failed"] == 0
        )
        now = registry.deployment(MODEL_NAME).production
        refused = [a for a, (status, _) in answers.items() if 400 <= status < 500]
        row.check(
            f"approve {answers['approve'][0]}, promote {answers['promote'][0]}; "
            f"production {now} (was {production})",
            bool(refused) and now == production,
        )
        damage(_artifact(env, production))
        probe = _restart_and_probe(env)
        row.data["restart"] = probe
        degraded = probe["degraded"] or {}
        row.check(
            f"after a restart: /readyz {probe['readyz_status']}, /v1/score "
            f"{probe['score_status']}, degraded: {degraded or 'not reported'}",
            probe["readyz_status"] == 200
            and probe["score_status"] == 200
            and degraded.get("registry_version") == production,
        )
    finally:
        for version, data in saved.items():  # the next rows need a healthy store
            path = _artifact(env, version)
            with contextlib.suppress(FileNotFoundError):
                path.chmod(0o644)
            path.write_bytes(data)
        with contextlib.suppress(Exception):
            if registry.deployment(MODEL_NAME).production != production:
                registry.rollback(MODEL_NAME, actor="reliability", reason="restore")
        env.restart_scorer()
    return row


def corrupt_artifact(env: Env) -> Row:
    return _artifact_row(env, "corrupt_artifact", "One flipped byte in a stored", _flip_byte)


def missing_artifact(env: Env) -> Row:
    return _artifact_row(env, "missing_artifact", "A deleted stored", _remove)


def _one_production(env: Env, row: Row, label: str) -> str | None:
    """Check that exactly one version is in production, the deployment names it and the
    scorer serves it within 2 s; returns it."""
    productions = _productions(env)
    named = env.stack.registry.deployment(MODEL_NAME).production
    served = False
    if len(productions) == 1:
        with contextlib.suppress(Exception):
            wait_for_scorer(env.scorer, production=productions[0], timeout_s=2.0)
            served = True
    row.check(
        f"{label}: production {productions} (deployment: {named}), served: {served}",
        productions == [named] and served,
    )
    return None if named is None else str(named)


def concurrent_promotions(env: Env) -> Row:
    d = env.durations
    admins, rounds = 8, 3
    row = Row(
        name="concurrent_promotions",
        fault=f"{admins} admins promote {admins} approved versions at the same moment "
        f"(admin API), {rounds} times",
        load=_load_text(env, d.load),
        must_hold=[
            NO_FAILURES,
            "exactly one production after each round; the deployment names "
            "it and the scorer serves it within 2 s",
            "the audit chain stays intact",
        ],
    )
    statuses: list[list[int]] = []

    def race(t0: float) -> list[dict[str, Any]]:
        for r in range(rounds):
            _sleep_until(t0 + d.fault_at + r * 3.0)
            versions = [env.stack.spare.pop(0) for _ in range(admins)]
            for version in versions:
                env.stack.registry.approve(
                    MODEL_NAME, version, actor="reliability", reason="fault matrix", force=True
                )
            gate = threading.Barrier(admins)
            codes: list[int] = []

            def promote(
                version: str, gate: threading.Barrier = gate, codes: list[int] = codes
            ) -> None:
                gate.wait()
                codes.append(_admin(env, version, "promote")[0])

            threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
            statuses.append(sorted(codes))
            _one_production(env, row, f"round {r + 1} (answers {sorted(codes)})")
        return []

    result = env.load(max(d.load, d.fault_at + rounds * 3.0 + 2), race)
    row.data.update(load=result, statuses=statuses)
    row.checks.insert(
        0, (f"{result['failed']} of {result['requests']} requests failed", result["failed"] == 0)
    )
    audit = env.stack.registry.verify_audit(MODEL_NAME)
    row.check(
        f"audit chain of {audit.entries} entries {'intact' if audit.ok else 'broken'}", audit.ok
    )
    return row


# A promotion in a process of its own: it connects, says "ready", promotes when told "go".
_PROMOTER = """
import sys, time
from registry.config import SharedSettings, load_settings
from registry.connections import model_registry
registry = model_registry(load_settings(SharedSettings))
registry.deployment(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
began = time.monotonic()
registry.promote(sys.argv[1], sys.argv[2], actor="reliability", reason="interrupted")
print(time.monotonic() - began, flush=True)
"""


class _Promoter:
    """A promoter process, connected to the registry and ready to promote ``version``."""

    def __init__(self, env_vars: dict[str, str], version: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _PROMOTER, MODEL_NAME, version],
            env=env_vars,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        if self.proc.stdin is None or self.proc.stdout is None:
            raise RuntimeError("the promoter process has no pipes")
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        if self.stdout.readline().strip() != "ready":
            raise RuntimeError("the promoter process did not start")

    def go(self) -> None:
        self.stdin.write("go\n")
        self.stdin.flush()

    def finish(self) -> float:
        """Wait for the promotion; the seconds it took."""
        took = float(self.stdout.readline())
        self.proc.wait(10)
        return took

    def kill_after(self, seconds: float) -> None:
        time.sleep(seconds)
        self.proc.kill()
        self.proc.wait(10)


def interrupted_promotions(env: Env) -> Row:
    d = env.durations
    times = 10 if d.soak < 300 else 20
    row = Row(
        name="interrupted_promotions",
        fault=f"a promoting process killed (-9) during its promotion, {times} times",
        load=_load_text(env, d.load),
        must_hold=[
            NO_FAILURES,
            "exactly one production after each (the old or the new one); the deployment "
            "names it and the scorer serves it within 2 s",
            "the audit chain stays intact",
        ],
    )
    env_vars = {**os.environ, **env.env}
    rng = random.Random(11)
    kills: list[dict[str, Any]] = []

    def approved() -> str:
        version = env.stack.spare.pop(0)
        env.stack.registry.approve(
            MODEL_NAME, version, actor="reliability", reason="fault matrix", force=True
        )
        return str(version)

    def interrupt(t0: float) -> list[dict[str, Any]]:
        _sleep_until(t0 + d.fault_at)
        whole = _Promoter(env_vars, approved())  # one whole promotion: how long it takes
        whole.go()
        took = whole.finish()
        for n in range(times):
            version = approved()
            promoter = _Promoter(env_vars, version)
            at = rng.uniform(0.0, 1.5 * took)  # before, during or just after the write
            promoter.go()
            promoter.kill_after(at)
            now = _one_production(
                env,
                row,
                f"kill {n + 1} after {1000 * at:.1f} ms (a promotion takes {1000 * took:.1f} ms)",
            )
            kills.append({"version": version, "after_s": round(at, 4), "production": now})
        return [{"promotion_s": took}]

    result = env.load(max(d.load, d.fault_at + times * 2.5 + 5), interrupt)
    row.data.update(load=result, kills=kills)
    row.checks.insert(
        0, (f"{result['failed']} of {result['requests']} requests failed", result["failed"] == 0)
    )
    landed = sum(1 for k in kills if k["production"] == k["version"])
    row.data["promotions_that_landed"] = landed
    audit = env.stack.registry.verify_audit(MODEL_NAME)
    row.check(
        f"{landed} of {len(kills)} killed promotions had landed; audit chain of "
        f"{audit.entries} entries {'intact' if audit.ok else 'broken'}",
        audit.ok,
    )
    return row
