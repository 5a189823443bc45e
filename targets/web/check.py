"""`wherry check BUNDLE --device browser[:wasm|:webgpu]`: a bundle's ONNX artifacts run by onnxruntime-web
in headless Chromium on the golden inputs, judged by the same parity engine as every other device."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import List, Mapping, Optional, Sequence

from wherry.runtimes import parity
from wherry.runtimes.bundle import load_bundle
from wherry.runtimes.checker import (FAILED, UNVERIFIABLE, ArtifactResult, CheckReport, golden_data, judge,
                                     not_built_result)
from wherry.runtimes.errors import BundleError

from . import browser, ortweb, session

log = logging.getLogger(__name__)

# The known silent-garbage case, named whenever a WebGPU output fails: it is what such a failure usually is.
KNOWN_WEBGPU_CASE = ("onnxruntime-web's older JSEP WebGPU backend (ort.all/ort.min, browser:webgpu-jsep) is known to "
                     "return wrong numbers WITHOUT an error on int8 QDQ (garbage) and fp16 (all zeros) artifacts; "
                     "the golden comparison caught it")
NEW_WEBGPU_CASE = ("wrong numbers from the WebGPU backend wherry uses (ort.webgpu.min.mjs), which was correct on int8 "
                   "QDQ where the older backend was not: a case not seen before (compare with browser:wasm)")


def _unrunnable_reason(art) -> Optional[str]:
    if art.format != "onnx":
        kind = "Paddle Lite .nb" if art.format == "nb" else f"{art.format} artifact"
        return f"a {kind} does not run in a browser (onnxruntime-web runs the ONNX artifacts)"
    return None


def _no_f16_reason(run: session.BrowserRun, art, error: str) -> Optional[str]:
    """An fp16 artifact refused by a WebGPU adapter without shader-f16 is not verifiable here, not broken."""
    adapter = run.facts.get("webgpu") or {}
    if run.ep.startswith("webgpu") and art.precision == "fp16" and "shader-f16" not in (adapter.get("features") or []):
        return (f"this WebGPU adapter ({adapter.get('vendor')}/{adapter.get('architecture')}) has no shader-f16, "
                f"and onnxruntime-web refused the fp16 artifact: {error.splitlines()[0][:200]}")
    return None


def check(bundle_dir: os.PathLike, ep: str = "wasm", threads: int = 2, artifacts: Optional[Sequence[str]] = None,
          overrides: Optional[Mapping] = None, timeout: float = 600.0) -> CheckReport:
    return check_many([bundle_dir], ep, threads, artifacts, overrides, timeout)[0]


def check_many(bundle_dirs: Sequence[os.PathLike], ep: str = "wasm", threads: int = 2,
               artifacts: Optional[Sequence[str]] = None, overrides: Optional[Mapping] = None,
               timeout: float = 600.0) -> List[CheckReport]:
    """Check several bundles in ONE browser page (one Chromium start): a report per bundle."""
    jobs: List[tuple] = []   # per bundle: (bundle, overrides, golden, results)
    runnable = []   # (job index, artifact, result, model path, feeds)
    for bundle_dir in bundle_dirs:
        bundle = load_bundle(bundle_dir)
        wanted = parity.normalize_overrides(overrides, [o.name for o in bundle.manifest.outputs])
        chosen = [bundle.manifest.artifact(a) for a in artifacts] if artifacts else list(bundle.manifest.artifacts)
        feeds, golden = golden_data(bundle)
        results: List[ArtifactResult] = []
        for art in chosen:
            result = ArtifactResult(art.file, art.format, art.runtime, art.precision, art.arch, art.size)
            results.append(result)
            try:
                bundle.verify_artifact(art)  # integrity first: a tampered artifact fails before any browser starts
            except BundleError as exc:
                result.reason = exc.message
                continue
            why_not = _unrunnable_reason(art)
            if why_not:
                result.status, result.reason = UNVERIFIABLE, why_not
            else:
                runnable.append((len(jobs), art, result, bundle.path(art), feeds))
        if not artifacts:
            results += [not_built_result(n) for n in bundle.manifest.not_built]
        jobs.append((bundle, wanted, golden, results))
    if runnable:
        run = session.run([item[3] for item in runnable], [item[4] for item in runnable], ep=ep, threads=threads,
                          timeout=timeout)
        device = run.device_info()
        unique = len({Path(item[3]).name for item in runnable}) == len(runnable)
        for position, (index, art, result, model, _) in enumerate(runnable):
            _, wanted, golden, _ = jobs[index]
            got = run.results[Path(model).name if unique else str(position)]
            result.seconds = ((got.load_ms or 0.0) + (got.run_ms or 0.0)) / 1000.0
            if got.error:
                unverifiable = _no_f16_reason(run, art, got.error)
                if unverifiable:
                    result.status, result.reason = UNVERIFIABLE, unverifiable
                else:
                    result.status, result.reason = FAILED, f"onnxruntime-web ({ep}) could not run it: {got.error}"
                continue
            judge(result, art, golden, got.outputs, wanted)
            if result.status == FAILED and ep.startswith("webgpu"):
                result.notes.append(KNOWN_WEBGPU_CASE if ep == "webgpu-jsep" else NEW_WEBGPU_CASE)
    else:
        name = browser.version(browser.find())
        device = {"machine": f"browser ({name.split(' built')[0]}, onnxruntime-web {ortweb.VERSION}, {ep})",
                  "browser": name, "onnxruntime_web": ortweb.VERSION, "execution_provider": ep}
    reports = []
    for bundle_dir, (bundle, _, _, results) in zip(bundle_dirs, jobs):
        for r in results:
            log.info("%s: %s %s", r.file, r.status, r.reason)
        reports.append(CheckReport(str(Path(bundle_dir)), bundle.manifest.name, bundle.manifest.target, device,
                                   results, bundle.manifest.source.get("path"),
                                   bool(bundle.manifest.program)))
    return reports
