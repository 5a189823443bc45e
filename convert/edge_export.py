"""The edge exporters' part of a conversion: OpenVINO IR, LiteRT .tflite and Rockchip .rknn from the ONNX export.

Each exporter module (``openvino_export``, ``litert_export``, ``rknn_export``) converts in a tool environment
of its own (``tool_env``) and says how its artifact is checked:
- ``VERIFIED_ON``: its runtime is installed in that environment, which runs ``python -m wherry.runtimes
  check`` on it as a board would; the verdict is adopted into the host's check (``CheckReport.adopt``);
- ``BOARD_PACKAGES``: for an aarch64 target it also runs on the emulated aarch64 board with those aarch64
  wheels (a note beside the verdict);
- ``SIMULATED``: nothing here runs it (an NPU); the exporter's child simulates the compiled graph on the
  golden inputs, judged by the artifact's tolerance and recorded as simulated (notes, the check's reason,
  ``report.json["simulated_verification"]``), never as a verdict.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Callable, List

import numpy as np

from wherry.convert import board_check, onnx_export, tool_env
from wherry.convert.failures import Failures, not_built
from wherry.runtimes import checker
from wherry.runtimes.bundle import Artifact, companions
from wherry.runtimes.errors import WherryError

log = logging.getLogger(__name__)


def exporters(formats) -> list:
    """The registered exporter modules of ``formats`` (convert/exporters/), in registry order."""
    from wherry.convert import exporters as registry

    return [e.module for e in registry.derived(list(formats))]


def versions(artifacts) -> dict:
    """The manifest's record of the edge tools that made ``artifacts`` (format -> tool and version)."""
    return {m.FORMAT: m.TOOL for m in exporters({a.format for a in artifacts})}


def build(profile, shared, stage: Path, formats, precisions, failures: Failures, onnx: Callable[[], object],
          make_artifact: Callable[..., Artifact]) -> List[Artifact]:
    """Every edge artifact of ``profile`` in ``precisions``; ``onnx()`` gives the fp32 ONNX export (a path, or the
    WherryError it failed with), ``make_artifact(stage, file, fmt, precision, arch, notes=...)`` its record."""
    artifacts: List[Artifact] = []
    for module in exporters(formats):
        # a format without fp32 builds its own float form for it (an NPU's fp16 .rknn)
        asked = [getattr(module, "FLOAT_FOR_FP32", "fp32") if p == "fp32" else p for p in precisions]
        wanted = [p for p in dict.fromkeys(asked) if p in module.PRECISIONS]
        for skipped in sorted(set(asked) - set(module.PRECISIONS)):
            log.info("%s: no %s artifact (wherry builds %s for it)", module.TOOL, skipped, ", ".join(module.PRECISIONS))
        if not wanted:
            continue
        source = onnx() if not any(s.lod_level for s in shared.info.inputs) else WherryError(
            "the model has sequence (LoD) inputs, which ONNX cannot carry", "use the Paddle Lite .nb")
        inputs = {s.name for s in shared.info.inputs}
        shapes = {k: list(v.shape) for k, v in shared.feeds.items() if k in inputs}
        calib_npz = None
        if "int8" in wanted and shared.quant.calib is not None:
            calib_npz = shared.work / "calibration.npz"
            if not calib_npz.is_file():
                np.savez(calib_npz, **shared.quant.calib)
        for precision in wanted:
            file = module.file_name(precision)
            if isinstance(source, WherryError):   # no ONNX, no edge artifact: the ONNX export's error is the reason
                failures.add(not_built(source, file=file, fmt=module.FORMAT, precision=precision, arch=module.ARCH,
                                       tool=onnx_export.TOOL), source)
                continue
            simulated = shared.work / f"{profile.name}.{file}.simulated.npz"

            def run(module=module, file=file, precision=precision, simulated=simulated):
                with shared.timeline.step(f"[{profile.name}] {module.TOOL} ({precision})"):
                    return module.export(source, stage / file, precision, calib_npz, shapes,
                                         platform=profile.npu_platform, golden_npz=golden_npz(shared),
                                         simulated_npz=simulated)

            notes = failures.attempt(run, file=file, fmt=module.FORMAT, precision=precision, arch=module.ARCH,
                                     tool=module.TOOL, leftover=stage / file)
            if notes is None:
                for companion in companions(stage / file):
                    companion.unlink(missing_ok=True)
                continue
            art = make_artifact(stage, file, module.FORMAT, precision, module.ARCH, notes=notes)
            art.size += sum(c.stat().st_size for c in companions(stage / file))
            if getattr(module, "SIMULATED", None) and simulated.is_file():
                shared.simulations[(profile.name, file)] = judge_simulation(art, shared, simulated, module.SIMULATED)
            artifacts.append(art)
    return artifacts


def golden_npz(shared) -> Path:
    """The golden inputs as one npz in the work folder (a tool that simulates its artifact reads them)."""
    path = shared.work / "golden-inputs.npz"
    if not path.is_file():
        np.savez(path, **{k: v for k, v in shared.feeds.items() if k in {s.name for s in shared.info.inputs}})
    return path


def judge_simulation(art: Artifact, shared, simulated: Path, where: str) -> dict:
    """A tool's simulation of its artifact on the golden inputs, judged by the artifact's tolerance: a note, and
    the record the host check's reason and report.json show; never the artifact's verdict."""
    with np.load(simulated) as data:
        actual = {k: data[k] for k in data.files}
    golden_outputs = {s.name: shared.reference[s.name] for s in shared.info.outputs if s.name in shared.reference}
    result = checker.judge(checker.ArtifactResult(art.file, art.format, art.runtime, art.precision, art.arch,
                                                  art.size), art, golden_outputs, actual)
    result.actual = None
    record = {**result.to_json(), "where": where}
    art.notes.extend(board_check.result_notes(record, where))
    return record


def check(profile, shared, stage: Path, edge: List[Artifact], report) -> None:
    """Check each edge artifact where its runtime is (this host's ``report`` lists it as not verifiable when
    wherry's own environment lacks that runtime) and put the verdicts into ``report`` and the notes."""
    for module in exporters({a.format for a in edge}):
        files = [a.file for a in edge if a.format == module.FORMAT]
        if getattr(module, "SIMULATED", None):   # nothing here runs it: its build's simulation is said, not adopted
            for result in report.results:
                record = shared.simulations.get((profile.name, result.file))
                if result.file in files and record is not None and result.status == checker.UNVERIFIABLE:
                    result.reason = simulation_text(record) + (f" ({result.reason})" if result.reason else "")
            continue
        with shared.timeline.step(f"[{profile.name}] checking {', '.join(files)} with {module.TOOL}"):
            try:
                results = tool_env.check(module.ENV, stage, files)
            except WherryError as exc:
                for art in edge:
                    if art.file in files:
                        art.notes.append(f"{module.VERIFIED_ON} could not check it: {exc.message.splitlines()[0]}")
                continue
        for art in edge:
            if art.file in results:
                art.notes.extend(board_check.result_notes(results[art.file], module.VERIFIED_ON))
        report.adopt(results, module.VERIFIED_ON)
        if getattr(module, "BOARD_PACKAGES", None) and profile.arch == "aarch64":
            on_board(profile, shared, stage, [a for a in edge if a.file in files], module)


def on_board(profile, shared, stage: Path, arts: List[Artifact], module) -> None:
    """An aarch64 target's edge artifacts on the emulated aarch64 board too, with the runtime's aarch64 wheel:
    the ARM kernels' results, as a note beside the host's verdict."""
    from wherry.targets.devices import EmulatedAarch64

    argv = ["check", str(stage), "--json", "--no-isolate"] + [w for a in arts for w in ("--artifact", a.file)]
    with shared.timeline.step(f"[{profile.name}] checking {', '.join(a.file for a in arts)} on the emulated board"):
        try:
            run = EmulatedAarch64(module.BOARD_PACKAGES).run(argv, [stage])
            results = {r["file"]: r for r in json.loads(run.stdout)["artifacts"]}
        except (WherryError, ValueError, KeyError) as exc:
            why = exc.message if isinstance(exc, WherryError) else f"no report ({exc})"
            for art in arts:
                art.notes.append(f"{module.BOARD} could not check it: {why.splitlines()[0][:200]}")
            return
    for art in arts:
        if art.file in results:
            art.notes.extend(board_check.result_notes(results[art.file], module.BOARD))


def simulation_text(record: dict) -> str:
    outs = [o for o in record.get("outputs", []) if o.get("max_abs") is not None]
    figures = (f" (max abs {max(float(o['max_abs']) for o in outs):.2e}, cosine "
               f"{min(float(o['cosine']) for o in outs):.6f})") if outs else ""
    return f"{record['where']}: {record['status']}{figures}"
