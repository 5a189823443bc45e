"""Progress and timing of conversion steps.

Each step is logged when it starts and when it ends (so a user watching a
long Lite optimization sees what is running), and its wall time is kept for
report.json under an identifier (``rpi4_paddle_lite_opt_arm``), not the sentence
shown to people. A step that fails logs no "done": the error says what happened.
A step still running after HEARTBEAT_S logs a heartbeat, so a CI log shows the
job is alive; on a terminal the heartbeat rewrites one line instead of adding lines.
Time spent inside the underlying tools is booked separately so the benchmarks can
tell wherry's own overhead from the tools' time.
"""
from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
import time
from typing import Dict

log = logging.getLogger("wherry")

HEARTBEAT_S = 15.0


def step_key(what: str) -> str:
    """'[rpi4] Paddle Lite opt (arm)' -> 'rpi4_paddle_lite_opt_arm' (a stable JSON key)."""
    return re.sub(r"[^a-z0-9]+", "_", what.lower()).strip("_")


def _live_terminal() -> bool:
    # A live line only for a person at a terminal with wherry's progress shown (INFO); logs stay plain.
    return sys.stderr.isatty() and log.isEnabledFor(logging.INFO)


class _Heartbeat(threading.Thread):
    def __init__(self, what: str, start: float):
        super().__init__(daemon=True, name="wherry-heartbeat")
        self.what, self.start_time, self.stopped = what, start, threading.Event()
        self.live = _live_terminal()

    def run(self) -> None:
        interval = 1.0 if self.live else HEARTBEAT_S
        while not self.stopped.wait(interval):
            elapsed = time.perf_counter() - self.start_time
            if self.live:
                sys.stderr.write(f"\r  {self.what}: {elapsed:.0f} s")
                sys.stderr.flush()
            else:
                log.info("%s: still running (%.0f s)", self.what, elapsed)

    def stop(self) -> None:
        self.stopped.set()
        if self.live and self.is_alive():
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


class Timeline:
    def __init__(self) -> None:
        self.steps: Dict[str, float] = {}
        self.tool_seconds: Dict[str, float] = {}
        self._start = time.perf_counter()

    @contextlib.contextmanager
    def step(self, what: str):
        log.info("%s ...", what)
        start = time.perf_counter()
        heartbeat = _Heartbeat(what, start)
        heartbeat.start()
        key = step_key(what)
        try:
            yield
        except BaseException:
            heartbeat.stop()
            self.steps[key] = self.steps.get(key, 0.0) + time.perf_counter() - start
            raise
        heartbeat.stop()
        elapsed = time.perf_counter() - start
        self.steps[key] = self.steps.get(key, 0.0) + elapsed
        log.info("%s done (%.1f s)", what, elapsed)

    def begin(self, what: str) -> float:
        """A step that runs beside the others (a background process): logged now; ``end`` books it."""
        log.info("%s ... (beside the other steps)", what)
        return time.perf_counter()

    def end(self, what: str, started: float, done: bool = True) -> None:
        elapsed = time.perf_counter() - started
        key = step_key(what)
        self.steps[key] = self.steps.get(key, 0.0) + elapsed
        if done:
            log.info("%s done (%.1f s)", what, elapsed)

    def book_tool(self, tool: str, seconds: float) -> None:
        key = step_key(tool)
        self.tool_seconds[key] = self.tool_seconds.get(key, 0.0) + seconds

    def to_json(self) -> dict:
        total = time.perf_counter() - self._start
        tools = sum(self.tool_seconds.values())
        return {"total_s": round(total, 3), "tools_s": round(tools, 3),
                "wherry_s": round(total - tools, 3),
                "steps_s": {k: round(v, 3) for k, v in self.steps.items()},
                "per_tool_s": {k: round(v, 3) for k, v in self.tool_seconds.items()}}
