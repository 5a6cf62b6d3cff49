"""The pacer's timer never wakes before the deadline it was given."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any

from loadtest.runner import event_loop_factory
from loadtest.timer import TimerFd, coarse_sleep_until, make_sleeper


def _on_loop(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(main())


def test_timerfd_wakes_at_or_after_each_deadline() -> None:
    woke: list[tuple[float, float]] = []

    async def main() -> None:
        timer = TimerFd(asyncio.get_running_loop())
        try:
            for offset in (0.0005, 0.002, -1.0):  # the last one is already past
                deadline = time.perf_counter() + offset
                await timer.sleep_until(deadline)
                woke.append((deadline, time.perf_counter()))
        finally:
            timer.close()

    _on_loop(main)
    assert len(woke) == 3
    assert all(now >= deadline for deadline, now in woke)


def test_make_sleeper_and_the_fallback_honour_the_deadline() -> None:
    woke: list[bool] = []

    async def main() -> None:
        sleep_until, close = make_sleeper(asyncio.get_running_loop())
        for sleeper in (sleep_until, coarse_sleep_until):
            deadline = time.perf_counter() + 0.001
            await sleeper(deadline)
            woke.append(time.perf_counter() >= deadline)
        close()

    _on_loop(main)
    assert woke == [True, True]
