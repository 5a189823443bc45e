"""Memory of a worker: the peak resident memory of its whole process tree, and what this host has free.

A conversion runs in a worker process that itself starts children (paddle_lite_opt, paddle2onnx,
one isolated runtime per verified artifact), so the worker's own RSS understates what a cell
costs. The tree is sampled from /proc; wait4's ru_maxrss (largest single process, including
short-lived children the sampler may miss) is the floor.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Dict, Optional

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _children_map() -> Dict[int, list]:
    children: Dict[int, list] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def tree_rss(pid: int) -> int:
    """Bytes resident in pid and all its descendants now (0 where /proc is not available)."""
    if not Path("/proc/self/statm").exists():
        return 0
    children, total, todo = _children_map(), 0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            pass
        todo.extend(children.get(current, ()))
    return total


class PeakSampler:
    """Samples a process tree's RSS every `interval` seconds in a thread until stopped."""

    def __init__(self, pid: int, interval: float = 0.2):
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss(self.pid))
            self._stop.wait(self.interval)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def available_bytes() -> Optional[int]:
    """MemAvailable of this host (what can be used without swapping), None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None
