"""Lower the CPU priority of background threads, so production's requests and records go first.

Linux keeps a nice value per thread: a thread can lower its own priority (raising its nice
value needs no privilege) without touching the rest of the process.  The sidecar's shadow
threads use it: on a busy machine, loading or running a shadow model takes longer, and the
records do not wait for it.  Not the scorer's model loader: a thread below the event loop's
priority that holds the GIL when the kernel preempts it holds the loop up with it
(service.follower).
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)


def lower_thread_priority(niceness: int) -> None:
    """Add ``niceness`` to the calling thread's nice value (at most 19); a warning, not an
    error, where the system does not allow it."""
    if niceness <= 0:
        return
    tid = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, tid)
        os.setpriority(os.PRIO_PROCESS, tid, min(19, current + niceness))
    except OSError as exc:
        log.warning("%s: cannot lower its priority: %s", threading.current_thread().name, exc)


def low_priority_executor(niceness: int, name: str) -> ThreadPoolExecutor:
    """A one-thread executor whose thread runs ``niceness`` below its creator's."""
    return ThreadPoolExecutor(
        max_workers=1,
        thread_name_prefix=name,
        initializer=lower_thread_priority,
        initargs=(niceness,),
    )
