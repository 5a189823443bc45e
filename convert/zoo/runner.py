"""Run a zoo: look every cell up in the cache, convert the rest as tasks, gather one matrix.

A task is one model with its uncached targets (one convert call: they share the golden run and
the ONNX export); its cells are reported, cached and restored one model x target at a time.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from . import cache as cache_mod
from .execute import allow_running, kill_running, run_task
from .memory import available_bytes
from .spec import Zoo, bundle_name

log = logging.getLogger(__name__)

GIB = 1 << 30
FIRST_ESTIMATE = 1 * GIB     # a worker's memory before any has been measured (a big model's conversion)
CACHEABLE = ("passed", "partly verified", "unverified", "failed")   # verdicts are results; errors and crashes may be the environment's


@dataclass
class Cell:
    model: str
    target: str
    status: str = "pending"          # passed | partly verified | unverified | failed | error | crashed
    cached: bool = False
    bundle: Optional[dict] = None    # ConvertedBundle.to_json() without its report
    error: Optional[dict] = None
    task_seconds: Optional[float] = None   # the wall time of the task that made it (shared by its targets)
    peak_rss_bytes: Optional[int] = None   # the task's worker process tree
    key: str = ""
    timings: dict = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        """Nothing failed. An unverified cell is ok (the zoo asked for no verification, or this host
        cannot run its artifacts) but never counted as passed."""
        return self.status in ("passed", "partly verified", "unverified")


@dataclass
class ZooRun:
    zoo: Zoo
    cells: List[Cell]
    wall_s: float
    jobs: int
    backend: str                      # local | ray
    memory_budget_bytes: Optional[int] = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.cells)


class MemoryGate:
    """Admits a task when its estimated memory fits the budget next to the running ones; the
    estimate is the largest peak measured so far. One task always runs, however big."""

    def __init__(self, budget: Optional[int]):
        self.budget, self.used, self.estimate = budget, 0, FIRST_ESTIMATE
        self._cond = threading.Condition()

    def acquire(self) -> int:
        with self._cond:
            while self.budget is not None and self.used and self.used + self.estimate > self.budget:
                self._cond.wait()
            amount = self.estimate
            self.used += amount
            return amount

    def release(self, amount: int, measured: Optional[int]) -> None:
        with self._cond:
            self.used -= amount
            if measured:
                self.estimate = max(self.estimate if self.estimate != FIRST_ESTIMATE else 0, measured)
            self._cond.notify_all()


def run_zoo(zoo: Zoo, out: Path, jobs: int = 1, cache_dir: Optional[Path] = None, use_cache: bool = True,
            max_memory: Optional[int] = None, ray_address: Optional[str] = None, timeout: Optional[float] = None,
            on_cell: Optional[Callable[[Cell], None]] = None) -> ZooRun:
    start = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    store = cache_mod.CellCache(cache_dir or cache_mod.default_dir()) if use_cache else None
    cells: Dict[tuple, Cell] = {}
    pending: Dict[str, List[str]] = {}
    for entry, target in zoo.cells():
        cell = cells[(entry.name, target)] = Cell(entry.name, target, key=cache_mod.cell_key(entry, target))
        hit = store.get(cell.key) if store is not None else None
        if hit is not None:
            cache_mod.restore(Path(hit["cache_bundle"]), out / bundle_name(entry.name, target))
            _fill(cell, hit)
            cell.cached = True
            assert cell.bundle is not None, "the cache keeps verdicts (CACHEABLE), which come with their bundle"
            cell.bundle["path"] = str(out / bundle_name(entry.name, target))
            if on_cell:
                on_cell(cell)
        else:
            pending.setdefault(entry.name, []).append(target)
    entries = {m.name: m for m in zoo.models}
    tasks = [{"model": entries[name].to_json(), "targets": targets, "out": str(out)} for name, targets in pending.items()]

    def finish(task: dict, result: dict) -> None:
        for target in task["targets"]:
            cell = cells[(task["model"]["name"], target)]
            cell.task_seconds, cell.peak_rss_bytes = result.get("wall_s"), result.get("peak_rss_bytes")
            if "crashed" in result:
                cell.status, cell.error = "crashed", {"type": "NativeCrash", "message": result["crashed"], "hint": None}
            else:
                _fill(cell, result["cells"].get(target, {"status": "error", "error": {"message": "no result"}}))
                if cell.bundle:  # the worker may have written it elsewhere (a Ray node's scratch folder)
                    cell.bundle["path"] = str(out / bundle_name(cell.model, target))
                if store is not None and cell.status in CACHEABLE and not result.get("uncacheable"):
                    store.put(cell.key, out / bundle_name(cell.model, target), _record(cell))
            if on_cell:
                on_cell(cell)

    budget = None
    if ray_address:
        from .ray_backend import run_tasks_on_ray
        run_tasks_on_ray(tasks, ray_address, out, finish, timeout, jobs=jobs if jobs > 1 else None)
        backend = "ray"
    else:
        budget = max_memory if max_memory is not None else _default_budget()
        _run_local(tasks, max(1, jobs), budget, finish, timeout)
        backend = "local"
    ordered = [cells[(e.name, t)] for e, t in zoo.cells()]
    return ZooRun(zoo, ordered, round(time.perf_counter() - start, 3), jobs, backend, budget)


def _default_budget() -> Optional[int]:
    free = available_bytes()
    return int(free * 0.8) if free else None


def _run_local(tasks, jobs: int, budget: Optional[int], finish, timeout) -> None:
    gate = MemoryGate(budget)
    lock = threading.Lock()
    allow_running()

    def one(task):
        amount = gate.acquire()
        result = {}
        try:
            log.info("converting %s for %s", task["model"]["name"], ", ".join(task["targets"]))
            result = run_task(task, timeout)
        finally:
            gate.release(amount, result.get("peak_rss_bytes"))
        with lock:
            finish(task, result)

    # Threads only wait for worker processes: the work itself happens in the children (each in a
    # session of its own, so Ctrl-C reaches only wherry, which then stops them all).
    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = [pool.submit(one, t) for t in tasks]
    try:
        for future in futures:
            future.result()
    except BaseException:
        for future in futures:
            future.cancel()
        kill_running()
        raise
    finally:
        pool.shutdown(wait=True)


def _fill(cell: Cell, data: dict) -> None:
    cell.status = data.get("status", "error")
    cell.bundle, cell.error, cell.timings = data.get("bundle"), data.get("error"), data.get("timings", {})
    if data.get("cached_from") is not None:
        cell.task_seconds, cell.peak_rss_bytes = data["cached_from"].get("task_seconds"), data["cached_from"].get(
            "peak_rss_bytes")


def _record(cell: Cell) -> dict:
    return {"status": cell.status, "bundle": cell.bundle, "error": cell.error, "timings": cell.timings,
            "cached_from": {"task_seconds": cell.task_seconds, "peak_rss_bytes": cell.peak_rss_bytes,
                            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}}
