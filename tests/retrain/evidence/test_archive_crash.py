"""Records produced while the archiver is killed (SIGKILL) and restarted are archived once."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from kafka import KafkaProducer

from registry.records import encode
from shadowline.stack import free_port
from tests.retrain.evidence.archive_helpers import archived_ids
from tests.retrain.evidence.records import T0, label, scored, shadow

KILLS = 2


def _steady(
    bootstrap: str, scores: str, labels: str, stop: threading.Event, sent: list[str]
) -> None:
    """Produce 100 score records (and 10 labels) every 50 ms until ``stop``."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    try:
        while not stop.is_set():
            for _ in range(100):
                n = len(sent)
                tx = f"tx-{n:06d}"
                record = scored(tx, 0.2, shadow("v2", 0.3), at=T0 + n * 20.0)
                producer.send(scores, key=tx.encode(), value=encode(record))
                if n % 10 == 0:
                    producer.send(labels, key=tx.encode(), value=encode(label(tx, n % 20 == 0)))
                sent.append(tx)
            producer.flush(10)
            time.sleep(0.05)
    finally:
        producer.close()


def _archiver(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "shadowline", "archive", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_records_are_archived_exactly_once_across_sigkills(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path, in_tmp_cwd: Path
) -> None:
    scores, labels = make_topic("scores", partitions=3), make_topic("labels", partitions=2)
    root = tmp_path / "archive"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "SHADOWLINE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "SHADOWLINE_SCORES_TOPIC": scores,
        "SHADOWLINE_LABELS_TOPIC": labels,
        "SHADOWLINE_ARCHIVE_DIR": str(root),
        "SHADOWLINE_ARCHIVE_GROUP": "crash",
        "SHADOWLINE_ARCHIVE_FLUSH_RECORDS": "300",
        "SHADOWLINE_ARCHIVE_FLUSH_INTERVAL_S": "0.2",
        "SHADOWLINE_ARCHIVE_SESSION_TIMEOUT_MS": "2000",
        "SHADOWLINE_ARCHIVE_HEARTBEAT_INTERVAL_MS": "500",
    }
    sent: list[str] = []
    stop = threading.Event()
    producing = threading.Thread(target=_steady, args=(kafka_bootstrap, scores, labels, stop, sent))
    producing.start()
    rng = random.Random(13)
    try:
        for _ in range(KILLS):
            before = len(archived_ids(root, "scores"))
            process = _archiver({**env, "SHADOWLINE_ARCHIVE_METRICS_PORT": str(free_port())})
            try:
                deadline = time.monotonic() + 60
                while len(archived_ids(root, "scores")) <= before:
                    assert process.poll() is None, process.communicate()[0].decode()
                    assert time.monotonic() < deadline, "the archiver wrote nothing in 60 s"
                    time.sleep(0.1)
                time.sleep(rng.uniform(0.0, 0.6))  # somewhere in a write, a rename or a commit
            finally:
                process.kill()
                process.communicate(timeout=10)
    finally:
        stop.set()
        producing.join(30)
    final = _archiver(env, "--once", "--json")
    out, _ = final.communicate(timeout=120)
    assert final.returncode == 0, out.decode()
    ids = archived_ids(root, "scores")
    assert len(ids) == len(sent)  # nothing twice
    assert sorted(ids) == sorted(sent)  # nothing lost
    assert sorted(archived_ids(root, "labels")) == sorted(sent[::10])
