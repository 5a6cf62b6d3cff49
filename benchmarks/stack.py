"""The scorer's surroundings for the bench: a LocalStack (redis + broker), the registry with
the benchmark model registered and promoted, and the broker outage switch."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.model import HEAVY, BenchModel, manifest_for, variant
from benchmarks.servers import BenchError

MODEL_NAME = "fraud"
SCORES_TOPIC = "bench.scores"
LABELS_TOPIC = "bench.labels"
ACTOR = "make-bench"


@dataclass
class ScorerStack:
    """LocalStack + registry; ``env`` is what ``shadowline serve`` needs to find them."""

    state_dir: Path
    stack: Any
    redis_url: str
    kafka_port: int
    registry: Any
    client: Any  # the redis client the registry uses
    env: dict[str, str]
    spare: list[str] = field(default_factory=list)  # registered versions, never used yet
    broker_proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def up(
        cls, state_dir: Path, onnx_bytes: bytes, spares: int, heavy: BenchModel | None = None
    ) -> ScorerStack:
        """Start the stack, register v1 (-> production), 3 shadows and ``spares`` versions
        for promotions, all variants of the same model, and ``heavy`` (the shedding ramp's
        heavy shadows) as h1..h3 when given."""

        from shadowline.stack import LocalStack

        stack = LocalStack(state_dir)
        comps = {c.name: c for c in stack.up(topics=[SCORES_TOPIC, LABELS_TOPIC])}
        try:
            return cls._registered(state_dir, stack, comps, onnx_bytes, spares, heavy)
        except BaseException:
            stack.down()
            raise

    @classmethod
    def _registered(
        cls,
        state_dir: Path,
        stack: Any,
        comps: dict[str, Any],
        onnx_bytes: bytes,
        spares: int,
        heavy: BenchModel | None,
    ) -> ScorerStack:
        import redis

        from registry import FileArtifactStore, ModelRegistry

        redis_url = f"redis://{comps['redis'].address}/0"
        artifacts = state_dir / "artifacts"
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        registry = ModelRegistry(client, FileArtifactStore(artifacts))
        env = {
            "SHADOWLINE_REDIS_URL": redis_url,
            "SHADOWLINE_KAFKA_BOOTSTRAP": comps["kafka"].address,
            "SHADOWLINE_SCORES_TOPIC": SCORES_TOPIC,
            "SHADOWLINE_LABELS_TOPIC": LABELS_TOPIC,
            "SHADOWLINE_ARTIFACT_DIR": str(artifacts.resolve()),
            "SHADOWLINE_MODEL_CACHE_DIR": str((state_dir / "model-cache").resolve()),
            "SHADOWLINE_MODEL_NAME": MODEL_NAME,
            "SHADOWLINE_LOG_LEVEL": "warning",
            "SHADOWLINE_SPOOL_DIR": str((state_dir / "spool").resolve()),
        }
        self = cls(state_dir, stack, redis_url, comps["kafka"].port, registry, client, env)
        versions = ["v1", "s1", "s2", "s3"] + [f"p{i}" for i in range(spares)]
        for version in versions:
            data = onnx_bytes if version == "v1" else variant(onnx_bytes, version)
            registry.register(data, manifest_for(data, version, MODEL_NAME), actor=ACTOR)
        if heavy is not None:
            for version in HEAVY:
                data = variant(heavy.onnx_bytes, version)
                manifest = manifest_for(data, version, MODEL_NAME, trees=heavy.n_trees)
                registry.register(data, manifest, actor=ACTOR)
        self.promote("v1")
        self.spare = versions[4:]
        return self

    def promote(self, version: str) -> None:
        """registered -> approved (forced: benchmark models have no shadow evidence) ->
        production, through the registry API as an admin would."""
        self.registry.approve(MODEL_NAME, version, actor=ACTOR, reason="benchmark", force=True)
        self.registry.promote(MODEL_NAME, version, actor=ACTOR, reason="benchmark")

    def promote_next(self) -> str:
        if not self.spare:
            raise BenchError("no registered version left to promote")
        version = self.spare.pop(0)
        self.promote(version)
        return version

    def rollback(self) -> str:
        """The production version retired and the previous one back, as an admin would."""
        return str(self.registry.rollback(MODEL_NAME, actor=ACTOR, reason="benchmark"))

    def set_shadows(self, n: int) -> None:
        """Exactly the first ``n`` of s1..s3 in shadow at 100% sampling."""
        self.set_shadow_versions(("s1", "s2", "s3")[:n])

    def set_shadow_versions(self, wanted: tuple[str, ...]) -> None:
        """Exactly ``wanted`` (of s1..s3 and h1..h3) in shadow at 100% sampling."""
        from registry import ModelNotFound, State

        for version in ("s1", "s2", "s3", *HEAVY):
            try:
                state = self.registry.state(MODEL_NAME, version)
            except ModelNotFound:
                continue  # the heavy shadows are registered only when the ramp needs them
            if version in wanted and state is not State.SHADOW:
                self.registry.shadow(MODEL_NAME, version, rate=1.0, actor=ACTOR, reason="bench")
            elif version not in wanted and state is State.SHADOW:
                self.registry.unshadow(MODEL_NAME, version, actor=ACTOR, reason="bench")

    # -- broker outage -------------------------------------------------------------------
    def kill_broker(self) -> None:
        """SIGKILL the broker (the stack's, or the one this object restarted)."""
        if self.broker_proc is not None:
            self._kill_group(self.broker_proc.pid)
            self.broker_proc.wait(5)
            self.broker_proc = None
            return
        self._kill_group(self.stack.component("kafka").pid)

    def restart_broker(self) -> None:
        """Start the broker again on the same port and re-create the topics (the in-memory
        broker forgets them, and drops data produced to a missing topic)."""
        from shadowline.stack import broker_command, ensure_topics, ping_broker

        log = (self.state_dir / "broker-restarted.log").open("ab")
        self.broker_proc = subprocess.Popen(
            broker_command(self.kafka_port),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin"},
        )
        log.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                ping_broker(self.kafka_port, 1.0)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise BenchError("the restarted broker did not answer in 20 s") from None
                time.sleep(0.05)
        ensure_topics(self.kafka_port, [SCORES_TOPIC, LABELS_TOPIC])

    @staticmethod
    def _kill_group(pid: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)

    def down(self) -> None:
        if self.broker_proc is not None:
            self.kill_broker()
        self.client.close()
        self.stack.down()
