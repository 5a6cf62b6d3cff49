"""Every example of the README and docs/ that a reader would paste runs, as pasted.

Per page: an empty folder with a local stack of its own (``shadowline stack up``'s code, in
the folder's ``.shadowline``), the state the page's prose assumes (tests/docs/pages.py), a
scorer on the page's port when the page says one is serving, then the page's shell and
Python blocks in one bash session (tests/docs/shell.py).  The session must exit 0, every
``curl`` must get the status the page shows, JSON blocks must parse as what they claim to be,
and the page's own check must hold.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from registry import FileArtifactStore, ModelRegistry
from shadowline.stack import LocalStack, free_port
from tests.docs.blocks import JSON, blocks
from tests.docs.pages import PAGES, Done, Page
from tests.docs.shell import environment, expectations, run_session

pytestmark = [pytest.mark.redis, pytest.mark.kafka]
TOPICS = ["shadowline.scores", "shadowline.labels"]  # what `shadowline stack up` creates


@contextlib.contextmanager
def scorer(cwd: Path, port: int, env: dict[str, str]) -> Iterator[None]:
    """``shadowline serve --port PORT`` in ``cwd``, until the block ends; ready when it
    yields."""
    log = (cwd / "scorer.log").open("wb")
    command = [str(Path(sys.executable).parent / "shadowline"), "serve", "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while not _ready(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the scorer did not start: {(cwd / 'scorer.log').read_text()}")
            time.sleep(0.1)
        yield
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
        log.close()


def _ready(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def page_folder(tmp_path: Path) -> Iterator[Path]:
    """An empty folder with the project's virtual environment at ``.venv`` (the README
    activates it) and a local stack in ``.shadowline``, stopped afterwards."""
    (tmp_path / ".venv").symlink_to(sys.prefix)
    stack = LocalStack(tmp_path / ".shadowline")
    stack.up(topics=TOPICS)
    yield tmp_path
    stack.down()


@pytest.mark.parametrize("page", sorted(PAGES))
def test_the_examples_of_the_page_run_as_written(page: str, page_folder: Path) -> None:
    spec: Page = PAGES[page]
    found = blocks(page)
    if spec.json_block is not None:
        for block in found:
            if block.language in JSON and block.marker is None:
                spec.json_block(block.text)
    redis_address = LocalStack(page_folder / ".shadowline").component("redis").address
    client = redis.Redis.from_url(f"redis://{redis_address}/0", decode_responses=True)
    registry = ModelRegistry(client, FileArtifactStore(page_folder / ".shadowline/artifacts"))
    try:
        spec.arrange(registry, page_folder)
        port = free_port()
        env = environment(page_folder, port, dict(spec.env))
        with scorer(page_folder, port, env) if spec.scorer else contextlib.nullcontext():
            session = run_session(found, page_folder, port, env, timeout_s=240)
        shown = f"{session.stdout}\n{session.stderr[-3000:]}"
        assert session.code == 0, f"{page}: failed at {session.failed_at}:\n{shown}"
        wanted = expectations(found)
        assert len(session.statuses) == len(wanted), shown
        for expected, status in zip(wanted, session.statuses, strict=True):
            assert expected.met_by(status), (expected, status, shown)
        spec.check(Done(cwd=page_folder, stdout=session.stdout, registry=registry))
    finally:
        registry.close()
