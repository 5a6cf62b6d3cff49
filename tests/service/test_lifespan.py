"""The scorer's shutdown stops its background tasks even when one swallows a cancellation."""

from __future__ import annotations

import asyncio
import logging

import pytest

from service.app import stop_task


def stubborn(swallow: int) -> tuple[asyncio.Task[None], list[int]]:
    """A task that goes on after its first ``swallow`` cancellations, as the registry
    follower did when redis's read timeout turned one into a timeout; ``caught`` counts
    them."""
    caught: list[int] = []

    async def follow() -> None:
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                caught.append(1)
                if len(caught) > swallow:
                    raise

    return asyncio.create_task(follow()), caught


def test_a_task_that_swallows_its_cancellation_is_cancelled_again() -> None:
    async def main() -> tuple[asyncio.Task[None], list[int]]:
        task, caught = stubborn(swallow=2)
        await asyncio.sleep(0)
        await stop_task(task, timeout_s=5.0, again_s=0.02)
        return task, caught

    task, caught = asyncio.run(main())
    assert task.cancelled()
    assert len(caught) == 3  # twice swallowed, the third ended it


def test_a_task_that_never_stops_is_left_after_the_timeout_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> bool:
        task, caught = stubborn(swallow=1_000_000)
        await asyncio.sleep(0)
        with caplog.at_level(logging.ERROR, logger="service.app"):
            await stop_task(task, timeout_s=0.2, again_s=0.02)
        still_running = not task.done()
        caught.extend([1] * 1_000_000)  # let the next cancellation end it
        task.cancel()
        await asyncio.wait({task}, timeout=5.0)
        return still_running

    assert asyncio.run(main())
    assert "did not stop within 0.2s" in caplog.text
