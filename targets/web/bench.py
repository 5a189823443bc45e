"""`wherry bench ARTIFACT --device browser[:wasm|:webgpu]`: latency of an ONNX artifact in onnxruntime-web
(median and min over N runs, 1 and 2 threads), next to native ONNX Runtime on this machine."""
from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from wherry.runtimes.bundle import is_bundle, load_bundle
from wherry.runtimes.checker import golden_data
from wherry.runtimes.errors import InputError

from . import session

log = logging.getLogger(__name__)

SOFTWARE_GPU = ("the WebGPU adapter is SwiftShader, a CPU emulation of a GPU: these figures say nothing about "
                "WebGPU on a real GPU, and no ratio to native is given")


def resolve_onnx(path: str, artifact: Optional[str]):
    """(the .onnx file, the golden inputs when it comes from a bundle or None)."""
    target = Path(path)
    if target.is_dir() and is_bundle(target):
        bundle = load_bundle(target)
        onnx = [a for a in bundle.manifest.artifacts if a.format == "onnx"]
        art = bundle.manifest.artifact(artifact) if artifact else (onnx[0] if onnx else None)
        if art is None or art.format != "onnx":
            raise InputError(f"{path} has no ONNX artifact{' named ' + artifact if artifact else ''} for a browser",
                             "convert with -t web (ONNX artifacts), or name one with --artifact model.onnx")
        bundle.verify_artifact(art)
        return bundle.path(art), golden_data(bundle)[0]
    if target.suffix == ".onnx" and target.is_file():
        folder = target.parent
        return target, (golden_data(load_bundle(folder))[0] if is_bundle(folder) else None)
    raise InputError(f"{path} is neither a bundle nor an .onnx file", "pass a bundle directory or an .onnx file")


def _stats(times: Sequence[float]) -> Dict[str, float]:
    return {"p50_ms": round(statistics.median(times), 3), "min_ms": round(min(times), 3),
            "mean_ms": round(statistics.fmean(times), 3)}


def native(model: Path, feeds, threads: int, runs: int, warmup: int) -> Dict[str, float]:
    """The same runs in native ONNX Runtime (CPU) on this machine: the yardstick for the browser."""
    from wherry import runtimes

    with runtimes.open(str(model), threads=threads, backend="onnxruntime") as sess:
        for _ in range(warmup):
            sess.run(feeds)
        times: List[float] = []
        for _ in range(runs):
            start = time.perf_counter()
            sess.run(feeds)
            times.append((time.perf_counter() - start) * 1000.0)
    return _stats(times)


def bench(model: Path, feeds, ep: str, threads: Sequence[int], runs: int, warmup: int,
          timeout: float = 600.0) -> dict:
    rows, device = [], None
    for count in threads:
        run = session.run([model], feeds, ep=ep, threads=count, runs=runs, warmup=warmup, timeout=timeout)
        got = run.results[Path(model).name]
        if got.error:
            raise InputError(f"onnxruntime-web ({ep}) could not run {Path(model).name}: {got.error}",
                             "check it first: wherry check BUNDLE --device browser")
        device = run.device_info()
        stats = _stats(got.times_ms)
        row = {"threads": count, "threads_used": run.facts.get("threads"), "load_ms": round(got.load_ms or 0, 1),
               **stats}
        if not run.software_adapter:
            ref = native(model, feeds, count, runs, warmup)
            row.update({"native_p50_ms": ref["p50_ms"], "native_min_ms": ref["min_ms"],
                        "ratio_p50": round(stats["p50_ms"] / ref["p50_ms"], 2) if ref["p50_ms"] else None})
        rows.append(row)
    notes = [SOFTWARE_GPU] if device and device.get("emulated") else []
    return {"artifact": str(model), "backend": "onnxruntime-web", "execution_provider": ep, "runs": runs,
            "warmup": warmup, "device": device, "rows": rows, "notes": notes}


def render(result: dict) -> str:
    lines = [f"{result['artifact']} in {result['device']['machine']}: {result['runs']} runs after "
             f"{result['warmup']} warm-up"]
    for row in result["rows"]:
        line = (f"  threads {row['threads']} (used {row['threads_used']}): median {row['p50_ms']:.3f} ms, "
                f"min {row['min_ms']:.3f} ms, load {row['load_ms']:.0f} ms")
        if "native_p50_ms" in row:
            line += (f"; native ONNX Runtime median {row['native_p50_ms']:.3f} ms -> "
                     f"{row['ratio_p50']:.2f}x native")
        lines.append(line)
    lines += [f"  note: {n}" for n in result["notes"]]
    return "\n".join(lines)
