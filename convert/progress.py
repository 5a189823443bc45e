"""Progress and timing of conversion steps.

Each step is logged when it starts and when it ends (so a user watching a
long Lite optimization sees what is running), and its wall time is kept for
report.json. Time spent inside the underlying tools is booked separately so
the benchmarks can tell wherry's own overhead from the tools' time.
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Dict

log = logging.getLogger("wherry")


class Timeline:
    def __init__(self):
        self.steps: Dict[str, float] = {}
        self.tool_seconds: Dict[str, float] = {}
        self._start = time.perf_counter()

    @contextlib.contextmanager
    def step(self, what: str):
        log.info("%s ...", what)
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.steps[what] = self.steps.get(what, 0.0) + elapsed
            log.info("%s done (%.1f s)", what, elapsed)

    def book_tool(self, tool: str, seconds: float) -> None:
        self.tool_seconds[tool] = self.tool_seconds.get(tool, 0.0) + seconds

    def to_json(self) -> dict:
        total = time.perf_counter() - self._start
        tools = sum(self.tool_seconds.values())
        return {"total_s": round(total, 3), "tools_s": round(tools, 3),
                "wherry_s": round(total - tools, 3),
                "steps_s": {k: round(v, 3) for k, v in self.steps.items()},
                "per_tool_s": {k: round(v, 3) for k, v in self.tool_seconds.items()}}
