"""A real Prometheus server for tests: the Debian package's binary on a free port.

`make install` installs it (the Makefile's ``system-deps``); a missing binary is an error that
says so, never a skipped test.  The server writes into a temporary folder and is stopped (TERM,
then KILL) when the block ends.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from shadowline.stack import free_port


def binary(name: str) -> str:
    """Path of ``prometheus`` or ``promtool``; fails naming the command that installs it."""
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed: run `make install` (apt-get prometheus)")
    return path


@contextlib.contextmanager
def running(config: dict[str, Any], folder: Path, timeout_s: float = 20.0) -> Iterator[str]:
    """Start Prometheus with ``config``; yields its base URL once it reports ready."""
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config))
    port = free_port()
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary("prometheus"),
            f"--config.file={config_file}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (folder / "prometheus.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"prometheus did not become ready:\n{tail}")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/-/ready", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def query(url: str, expr: str) -> dict[str, Any]:
    """The JSON answer of an instant query (``status`` is ``success`` or ``error``)."""
    answer = httpx.get(f"{url}/api/v1/query", params={"query": expr}, timeout=5.0)
    result: dict[str, Any] = answer.json()
    return result
