"""A child process that must not outlive the process that started it (isolated sessions, zoo workers,
conversion tools): a parent killed with SIGKILL runs no clean-up, so the child has to notice by itself."""
from __future__ import annotations

import os
import signal
import threading
import time

PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Linux: the kernel sends this process SIGKILL when the thread that started it ends (its whole
    parent process dying, even by SIGKILL, included), so the parent must start it from a thread that
    waits for it. Elsewhere a daemon thread polls the parent's pid. Exits at once when ``parent`` is
    already gone (it died before this call)."""
    armed = False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch, args=(parent,), name="wherry-lifeline", daemon=True).start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)
