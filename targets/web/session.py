"""One browser run: serve ONNX models and input arrays to the page, let headless Chromium run them with
onnxruntime-web, collect each model's outputs (as numpy arrays), its timings and the browser's facts."""
from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from wherry.runtimes.errors import WherryError

from . import browser, ortweb
from .server import PageServer

log = logging.getLogger(__name__)

EXECUTION_PROVIDERS = tuple(ortweb.BUILDS)  # wasm | webgpu | webgpu-jsep
# onnxruntime-web tensor type -> numpy dtype of the bytes the page posts back
_NUMPY = {"float32": np.float32, "float64": np.float64, "float16": np.float16, "int64": np.int64,
          "uint64": np.uint64, "int32": np.int32, "uint32": np.uint32, "int16": np.int16, "uint16": np.uint16,
          "int8": np.int8, "uint8": np.uint8, "bool": np.bool_}


class BrowserRunError(WherryError):
    """The browser did not run the page to its end."""


@dataclass
class ModelResult:
    file: str
    outputs: Dict[str, np.ndarray] = field(default_factory=dict)
    error: Optional[str] = None
    load_ms: Optional[float] = None
    run_ms: Optional[float] = None
    times_ms: List[float] = field(default_factory=list)


@dataclass
class BrowserRun:
    browser: str                  # e.g. "Chromium 156.0.8078.108"
    ep: str                       # the execution provider asked for
    facts: Dict[str, Any]         # what the page saw (its JSON): user agent, isolation, threads, WebGPU adapter
    results: Dict[str, ModelResult]

    @property
    def software_adapter(self) -> bool:
        """WebGPU on a software rasterizer (SwiftShader): correct or not, its timings are no GPU's."""
        adapter = self.facts.get("webgpu") or {}
        text = " ".join(str(adapter.get(k) or "") for k in ("vendor", "architecture", "description")).lower()
        return "swiftshader" in text or "llvmpipe" in text

    def device_info(self) -> Dict[str, Any]:
        """The device entry of a check report: browser, execution provider, threads really used."""
        info: Dict[str, Any] = {
            "machine": f"browser ({self.browser.split(' built')[0]}, onnxruntime-web {ortweb.VERSION}, {self.ep})",
            "browser": self.browser, "user_agent": self.facts.get("user_agent"),
            "onnxruntime_web": ortweb.VERSION, "execution_provider": self.ep,
            "build": self.facts.get("build"), "threads": self.facts.get("threads"),
            "cross_origin_isolated": self.facts.get("cross_origin_isolated")}
        if self.ep.startswith("webgpu"):
            info["webgpu_adapter"] = self.facts.get("webgpu")
            info["emulated"] = self.software_adapter
            if self.software_adapter:
                info["machine"] += ", emulated GPU: SwiftShader"
        return info


def _input_files(feeds: Mapping[str, np.ndarray], prefix: str = ""):
    files, specs = {}, []
    for i, (name, array) in enumerate(feeds.items()):
        array = np.ascontiguousarray(array)
        if array.dtype.name not in _NUMPY:
            raise WherryError(f"input {name!r} has dtype {array.dtype}, which onnxruntime-web cannot take",
                              "feed one of: " + ", ".join(_NUMPY))
        url = f"input/{prefix}{i}.bin"   # relative: the page server's secret prefix stays out of the job
        files["/" + url] = array.tobytes()
        specs.append({"name": name, "dtype": array.dtype.name, "dims": list(array.shape), "url": url})
    return files, specs


def run(models: Sequence[Path], feeds, ep: str = "wasm", threads: int = 1,
        runs: int = 0, warmup: int = 0, timeout: float = 600.0) -> BrowserRun:
    """Run each ONNX model on ``feeds`` in one headless browser page; ``runs`` > 0 also times that many runs.

    ``feeds``: one mapping (input name -> array) for every model, or a list with one mapping per model.
    Results are keyed by the model's file name, or by its position ("0", "1", ...) when names repeat."""
    if ep not in EXECUTION_PROVIDERS:
        raise WherryError(f"unknown browser execution provider {ep!r}", "use browser:wasm or browser:webgpu")
    executable = browser.find()
    name = browser.version(executable)
    dist = ortweb.package_dir() / "dist"
    per_model = isinstance(feeds, (list, tuple))
    files, shared = ({}, []) if per_model else _input_files(feeds)
    tasks = []
    for i, model in enumerate(models):
        url = f"model/{i}.onnx"
        files["/" + url] = Path(model)
        inputs = shared
        if per_model:
            more, inputs = _input_files(feeds[i], prefix=f"{i}-")
            files.update(more)
        tasks.append({"id": str(i), "file": Path(model).name, "url": url, "runs": runs, "warmup": warmup,
                      "inputs": inputs})
    job = {"ep": ep, "build": f"ort/{ortweb.BUILDS[ep]}", "threads": threads, "tasks": tasks}
    files["/job"] = json.dumps(job).encode()

    results = {t["id"]: ModelResult(t["file"]) for t in tasks}
    facts: Dict[str, Any] = {}
    done = threading.Event()
    lock = threading.Lock()

    def on_post(path: str, query: dict, body: bytes) -> None:
        parts = path.strip("/").split("/")
        with lock:
            if parts[0] == "output":
                dtype = _NUMPY[query["type"]]
                dims = [int(d) for d in query["dims"].split(",") if d != ""]
                results[parts[1]].outputs[parts[2]] = np.frombuffer(body, dtype=dtype).reshape(dims)
            elif parts[0] == "result":
                report = json.loads(body)
                result = results[parts[1]]
                result.error = None if report.get("ok") else report.get("error") or "failed without a message"
                result.load_ms, result.run_ms = report.get("load_ms"), report.get("run_ms")
                result.times_ms = list(report.get("times_ms") or [])
            elif parts[0] == "log":
                entry = json.loads(body)
                log.warning("page: %s", entry.get("message"))
            elif parts[0] == "done":
                facts.update(json.loads(body))
                done.set()

    with PageServer(dist, files, on_post) as server:
        log.info("serving %d model(s) at %s (%s, %d thread(s))", len(tasks), server.url, ep, threads)
        page = browser.Headless(executable, server.url, webgpu=ep.startswith("webgpu"))
        try:
            deadline = time.monotonic() + timeout
            while not done.wait(0.2):
                if page.exited() is not None:
                    raise BrowserRunError(f"{name} exited (code {page.exited()}) before the page finished",
                                          "its last lines:\n" + page.log_tail())
                if time.monotonic() > deadline:
                    raise BrowserRunError(f"the page did not finish within {timeout:g} s in {name}",
                                          "a large model may need more: --timeout; its last lines:\n"
                                          + page.log_tail())
        finally:
            page.close()
    if facts.get("fatal"):
        raise BrowserRunError(f"the page failed in {name}: {facts['fatal']}",
                              f"the onnxruntime-web files are in {dist}; delete that folder to fetch them again")
    for result in results.values():
        if result.error is None and not result.outputs and result.run_ms is None:
            result.error = "the page reported no result for this model"
    unique = len({r.file for r in results.values()}) == len(results)
    return BrowserRun(name, ep, facts, {(r.file if unique else key): r for key, r in results.items()})
