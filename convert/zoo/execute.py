"""Run one zoo task in a fresh worker process, measuring its process tree's peak memory.

Shared by the local scheduler and the Ray tasks: a crash of the worker (a native abort inside a
tool, the OOM killer) becomes a "crashed" verdict for the task's cells, never a crash of the zoo.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

from ..paddle_mode import FLAG as PADDLE_MODE_FLAG
from .memory import PeakSampler

_running: set = set()            # worker processes of this zoo run, killed as a whole on Ctrl-C
_running_lock = threading.Lock()
_stopped = threading.Event()     # set by kill_running: a worker that starts after it is killed at once


def kill_running() -> None:
    """Stop every worker still running (their own children included): the zoo was interrupted."""
    with _running_lock:
        _stopped.set()
        for proc in list(_running):
            _kill_group(proc)


def allow_running() -> None:
    _stopped.clear()


def _crash_text(returncode: int, stderr: str) -> str:
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        what = f"the worker process was killed by {name}"
        if name == "SIGKILL":
            what += " (out of memory? lower -j or --max-memory)"
    else:
        what = f"the worker process exited with status {returncode}"
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return what + (f": {lines[-1][:300]}" if lines else "")


def run_task(task: dict, timeout: Optional[float] = None) -> dict:
    """Run `task` (see worker.py) in a child; returns the worker's result plus peak_rss_bytes / wall_s,
    or {"crashed": reason} when the child died without a result."""
    with tempfile.TemporaryDirectory(prefix="wherry-zoo-task-") as scratch:
        task_file, result_file = Path(scratch) / "task.json", Path(scratch) / "result.json"
        task_file.write_text(json.dumps(task))
        env = {k: v for k, v in os.environ.items() if k != PADDLE_MODE_FLAG}   # wherry picks Paddle's mode per child
        start = time.perf_counter()
        # stderr goes to a file, not a pipe: a chatty tool must never block on a full pipe
        with open(Path(scratch) / "stderr.txt", "w+") as err:
            # the worker is started (and waited for) by this thread, which its PDEATHSIG is tied to
            proc = subprocess.Popen([sys.executable, "-m", "wherry.convert.zoo.worker", str(task_file),
                                     str(result_file), str(os.getpid())], stdout=subprocess.DEVNULL, stderr=err, env=env,
                                    start_new_session=True)
            sampler = PeakSampler(proc.pid)
            with _running_lock:
                _running.add(proc)
                if _stopped.is_set():
                    _kill_group(proc)
            try:
                status, usage, timed_out = _wait(proc, timeout)
                proc.returncode = os.waitstatus_to_exitcode(status)
            finally:
                with _running_lock:
                    _running.discard(proc)
                peak = sampler.stop()
                if proc.returncode is None:  # interrupted: leave no worker behind
                    _kill_group(proc)
            err.seek(0)
            stderr = err.read()
        wall = time.perf_counter() - start
        peak = max(peak, int(usage.ru_maxrss) * 1024 if usage is not None else 0)
        if proc.returncode == 0 and result_file.is_file():
            result = json.loads(result_file.read_text())
        else:
            result = {"crashed": f"timed out after {timeout:g} s (--timeout)" if timed_out
                      else _crash_text(proc.returncode, stderr)}
        result.update(peak_rss_bytes=peak, wall_s=round(wall, 3))
        return result


def _wait(proc, timeout: Optional[float]):
    """(wait status, rusage, timed out); wait4 gives the rusage of the worker and its reaped children."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while deadline is None or time.monotonic() < deadline:
        pid, status, usage = os.wait4(proc.pid, 0 if deadline is None else os.WNOHANG)
        if pid:
            return status, usage, False
        time.sleep(0.2)
    _kill_group(proc)
    _, status, usage = os.wait4(proc.pid, 0)
    return status, usage, True


def _kill_group(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
