"""Sub-millisecond wake-ups for the open-loop pacer, without spinning.

Event-loop timers (libuv's, and asyncio's epoll timeouts) have 1 ms resolution, so a pacer
built on ``asyncio.sleep`` sends each request up to ~1-2 ms after its due time, and that delay
lands in every latency it measures.  On Linux a ``timerfd`` armed at an absolute
``CLOCK_MONOTONIC`` deadline (the clock behind ``time.perf_counter``) becomes readable within
microseconds of it; the loop watches it like a socket, so waiting costs no CPU.  Elsewhere
:func:`make_sleeper` falls back to ``asyncio.sleep``.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import time
from collections.abc import Awaitable, Callable

CLOCK_MONOTONIC = 1
TFD_TIMER_ABSTIME = 1
TFD_NONBLOCK = 0o4000
TFD_CLOEXEC = 0o2000000
FALLBACK_MIN_SLEEP_S = 0.001  # below the loop's timer resolution a sleep returns at once

SleepUntil = Callable[[float], Awaitable[None]]


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class TimerFd:
    """A one-shot absolute timer on ``CLOCK_MONOTONIC`` that the event loop can await."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._settime = libc.timerfd_settime
        self._settime.argtypes = [
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.c_void_p,
        ]
        fd = libc.timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create failed")
        self.fd = int(fd)
        self._loop = loop
        self._spec = _Itimerspec()
        self._waiter: asyncio.Future[None] | None = None
        loop.add_reader(self.fd, self._fired)

    def _fired(self) -> None:
        try:
            os.read(self.fd, 8)
        except BlockingIOError:
            return
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def sleep_until(self, deadline: float) -> None:
        """Return at or after ``deadline`` (``time.perf_counter()`` seconds)."""
        if deadline <= time.perf_counter():
            await asyncio.sleep(0)
            return
        sec = int(deadline)
        self._spec.it_value.tv_sec = sec
        self._spec.it_value.tv_nsec = max(1, int((deadline - sec) * 1e9))
        self._waiter = self._loop.create_future()
        if self._settime(self.fd, TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            raise OSError(ctypes.get_errno(), "timerfd_settime failed")
        await self._waiter

    def close(self) -> None:
        self._loop.remove_reader(self.fd)
        os.close(self.fd)


async def coarse_sleep_until(deadline: float) -> None:
    """The portable fallback: ``asyncio.sleep``, never shorter than the loop's resolution."""
    await asyncio.sleep(max(FALLBACK_MIN_SLEEP_S, deadline - time.perf_counter()))


def make_sleeper(loop: asyncio.AbstractEventLoop) -> tuple[SleepUntil, Callable[[], None]]:
    """``(sleep_until, close)``: timerfd-based where available, else ``asyncio.sleep``."""
    try:
        timer = TimerFd(loop)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        return coarse_sleep_until, lambda: None
    return timer.sleep_until, timer.close
