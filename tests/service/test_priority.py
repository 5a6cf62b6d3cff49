"""Background threads that give way: the model loader and the shadows (service/priority.py)."""

from __future__ import annotations

import os
import threading

from service.priority import low_priority_executor


def _own_nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def test_the_executor_thread_runs_below_its_creator_and_the_creator_is_unchanged() -> None:
    before = _own_nice()
    with low_priority_executor(5, "test-low") as pool:
        theirs = pool.submit(_own_nice).result()
        name = pool.submit(lambda: threading.current_thread().name).result()
    assert theirs == min(19, before + 5)
    assert _own_nice() == before
    assert name.startswith("test-low")


def test_no_niceness_leaves_the_thread_at_its_creators_priority() -> None:
    with low_priority_executor(0, "test-same") as pool:
        assert pool.submit(_own_nice).result() == _own_nice()
