"""Quantized artifacts for both formats; their cost is measured by running them, not assumed.

Per precision (each its own artifact, named for it):

=============  ===============================================  ============================================
precision      Paddle Lite .nb (ARM only)                        ONNX (runs here and on boards)
=============  ===============================================  ============================================
fp16           opt --enable_fp16, kept only if opt really        float16 weights and math, fp32 I/O
               chose fp16 kernels (PyPI's opt has none for ARM)
int8-weight    opt --quant_model QUANT_INT8                      int8 per-channel weights + DequantizeLinear
int16-weight   opt --quant_model QUANT_INT16                     int16 per-channel weights + DequantizeLinear
int8           Paddle static PTQ on the calibration data, then   ORT static QDQ: uint8 activations, int8
               opt: int8 conv/fc kernels, counted in the report  per-channel weights, MinMax calibration
=============  ===============================================  ============================================
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from wherry.runtimes import vocabulary
from wherry.convert import legalize, lite_export
from wherry.convert.child import ToolError
from wherry.convert.quantize import lite_quant, onnx_quant
from wherry.convert.quantize.calibration import load_calibration, load_eval  # noqa: F401 - public API
from wherry.runtimes import parity
from wherry.runtimes.bundle import Artifact, NotBuilt, content_hash
from wherry.runtimes.errors import InputError
from wherry.runtimes.specs import TensorSpec

log = logging.getLogger(__name__)

QUANTIZED = vocabulary.QUANTIZED
WEIGHT_BITS = {p.name: p.weight_bits for p in vocabulary.PRECISIONS.values() if p.weight_bits}


def check_precisions(precisions, calib) -> None:
    unknown = [p for p in precisions if p not in QUANTIZED + ("fp32",)]
    if unknown:
        raise InputError(f"unknown precision(s) {', '.join(unknown)}", f"choose from fp32, {', '.join(QUANTIZED)}")
    if "int8" in precisions and calib is None:
        raise InputError("int8 needs calibration data", "pass --calib samples.npz (50-200 representative inputs)")


def _artifact(stage: Path, file: str, fmt: str, precision: str, arch: str, outputs: List[TensorSpec],
              places: Optional[str] = None, notes: Optional[List[str]] = None) -> Artifact:
    path = stage / file
    tolerance = parity.default_tolerance(precision)
    return Artifact(file=file, format=fmt, precision=precision, arch=arch, size=path.stat().st_size,
                    sha256=content_hash(path), places=places, tolerance={o.name: tolerance for o in outputs},
                    notes=list(notes or []))


def build_quantized(stage_dir: Path, precisions: List[str], model_file: Path, params_file: Path,
                    fp32_onnx: Optional[Path], input_specs: List[TensorSpec], lite_places: Optional[List[str]],
                    calib: Optional[Dict[str, np.ndarray]], opset: Optional[int] = None, *,
                    output_specs: Optional[List[TensorSpec]] = None, work: Optional[Path] = None,
                    notes: Optional[List[str]] = None, failures=None,
                    onnx_requested: bool = False, coverage: Optional[Dict[str, dict]] = None,
                    calib_method: str = "minmax", programs: Optional[Dict[str, Tuple[Path, Path]]] = None
                    ) -> List[Artifact]:
    """Write the quantized artifacts into stage_dir and describe them.

    ``model_file``/``params_file`` are the legalized legacy program (Lite and Paddle PTQ read it);
    ``fp32_onnx`` is the fp32 ONNX artifact the ONNX variants derive from (None: no ONNX variants);
    ``lite_places`` None builds no .nb. ``opset`` is the fp32 ONNX's opset (the variants keep it;
    recorded for the caller, ORT's tools never change it). ``output_specs`` default to the model's
    outputs (for per-output tolerances); ``work`` is scratch space (a temporary directory when None);
    ``notes`` collects what was deliberately not built and why. ``failures`` (a convert.failures.Failures)
    makes each variant independent: a tool error is recorded there and the other variants are still built;
    without it the first error is raised. ``onnx_requested`` with no ``fp32_onnx`` records the ONNX variants
    as not built (their fp32 base failed). fp32 in ``precisions`` is skipped: the caller builds it.
    ``calib_method`` (minmax | kl | percentile) is how int8 activation ranges come from ``calib``, for the
    ONNX and the Lite artifact alike. ``coverage`` collects, per int8 .nb file, how many of its weight layers opt gave int8 kernels
    (the ONNX artifacts' share is read from their files: ``onnx_quant.coverage``). ``programs`` collects, per
    int8 .nb file, the quantized program (model, params) opt built it from (`wherry debug` rebuilds it tapped).
    """
    if output_specs is None:
        from wherry.convert import source
        output_specs = source.read(model_file).outputs
    if notes is None:
        notes = []
    if work is None:
        with tempfile.TemporaryDirectory(prefix="wherry-quant-") as tmp:
            return build_quantized(stage_dir, precisions, model_file, params_file, fp32_onnx, input_specs,
                                   lite_places, calib, opset, output_specs=output_specs, work=Path(tmp), notes=notes,
                                   failures=failures, onnx_requested=onnx_requested, coverage=coverage,
                                   calib_method=calib_method, programs=programs)
    precisions = [p for p in precisions if p != "fp32"]
    stage_dir, model_file, params_file = Path(stage_dir), Path(model_file), Path(params_file)
    work = Path(work)
    check_precisions(precisions, calib)
    artifacts: List[Artifact] = []
    arm = lite_places is not None and "arm" in lite_places
    places = ",".join(lite_places or [])
    ptq: Dict[str, object] = {}
    skipped_nb: List[str] = []

    def attempt(build, name, fmt, precision, arch, tool):
        if failures is None:
            return build()
        return failures.attempt(build, file=name, fmt=fmt, precision=precision, arch=arch, tool=tool,
                                places=places if fmt == "nb" else None, leftover=stage_dir / name)

    for precision in precisions:
        onnx_name = f"model.{precision}.onnx"
        if fp32_onnx is not None:
            artifacts += attempt(lambda: _onnx_variant(stage_dir, precision, fp32_onnx, calib, output_specs, work,
                                                       notes, calib_method), onnx_name, "onnx", precision, "any",
                                 "ONNX Runtime quantization") or []
        elif onnx_requested and failures is not None:
            failures.add(NotBuilt(onnx_name, "onnx", precision, "any", "paddle2onnx",
                                  "derived from the fp32 ONNX artifact, which could not be built",
                                  "see model.onnx in the same list"))
        if lite_places is None:
            continue
        if not arm:
            skipped_nb.append(precision)
            continue
        name = f"model.arm.{precision}.nb"
        made = attempt(lambda: _lite_variant(stage_dir, name, precision, model_file, params_file, lite_places,
                                             calib, work, ptq, notes, coverage, calib_method, programs=programs),
                       name, "nb", precision, "arm", "Paddle PTQ" if precision == "int8" else lite_export.TOOL)
        if made is None:
            continue
        structure, check = made
        artifacts.append(_artifact(stage_dir, name, "nb", precision, "arm", output_specs, places,
                                   [structure, check,
                                    "ARM only: built and structurally checked, not verifiable on an "
                                    "x86 host (Lite's x86 runtime returns NaN for quantized programs)"]))
    if skipped_nb:
        notes.append(f"{', '.join(skipped_nb)} .nb not built for Lite places {places}: Lite's quantized and "
                     "fp16 kernels exist for ARM only (the x86 runtime returns NaN for them)")
    return artifacts


def keep_in_float(stage_dir: Path, artifact: Artifact, model_file: Path, params_file: Path, lite_places, calib,
                  weights: List[str], work: Path, calib_method: str, coverage: Dict[str, dict], notes: List[str],
                  programs: Optional[Dict[str, Tuple[Path, Path]]] = None) -> bool:
    """--max-drop for the int8 .nb: Paddle PTQ again with the layers reading ``weights`` (the ones the int8 ONNX
    keeps in float) marked skip_quant, Lite's own way of keeping a layer in float; opt again, and the artifact's
    record follows. False when opt then chooses no int8 kernel: the file is gone and ``notes`` say why."""
    made = _lite_variant(stage_dir, artifact.file, "int8", model_file, params_file, lite_places, calib, work, {},
                         notes, coverage, calib_method, skip=weights, programs=programs)
    if made is None:
        notes.append(f"{artifact.file} not kept: with the layers --max-drop keeps in float, no int8 kernel is left")
        return False
    path = stage_dir / artifact.file
    artifact.size, artifact.sha256 = path.stat().st_size, content_hash(path)
    artifact.notes[:2] = list(made)   # the structure and its re-read, of the rebuilt file
    artifact.notes.append(f"kept in float to meet --max-drop, the layers the int8 ONNX keeps in float (Paddle "
                          f"PTQ's skip list): {', '.join(weights)}")
    return True


def _lite_variant(stage_dir: Path, name: str, precision: str, model_file: Path, params_file: Path, lite_places,
                  calib, work: Path, ptq: dict, notes: List[str], coverage: Optional[Dict[str, dict]] = None,
                  calib_method: str = "minmax", skip: Sequence[str] = (),
                  programs: Optional[Dict[str, Tuple[Path, Path]]] = None):
    """Build one quantized/fp16 .nb; (structure, structural check) notes, or None when deliberately not kept.
    ``skip``: weights whose layers int8 PTQ leaves in float."""
    if precision == "int8":
        if "model" not in ptq:
            ptq["fed"] = {}
            quantized = lite_quant.paddle_ptq(model_file, params_file, calib, work / "ptq", calib_method, skip,
                                              fed=ptq["fed"])
            # PTQ re-saves the program and clips the same attributes export did: legalize again
            ptq["model"] = legalize.legalize(quantized, quantized.with_suffix(".pdiparams"), work / "ptq-legal")[:2]
        result = lite_export.export_nb(ptq["model"][0], ptq["model"][1], stage_dir / name, lite_places)
        if result.count("int8") == 0:
            notes.append("int8 .nb not kept: opt chose no int8 kernels for the PTQ program")
            (stage_dir / name).unlink()
            return None
        if coverage is not None:
            coverage[name] = lite_coverage(result.kernels)
        if programs is not None:
            programs[name] = ptq["model"]
    elif precision == "fp16":
        result = lite_export.export_nb(model_file, params_file, stage_dir / name, lite_places, enable_fp16=True)
        if result.count("fp16") == 0:
            # Shipping it would label an fp32 program fp16 - the silent mislabel wherry exists to prevent.
            notes.append("fp16 .nb not built: this paddle_lite_opt chose no fp16 kernels for ARM (PyPI's "
                         "paddlelite build has none), it would have written fp32 under an fp16 name")
            (stage_dir / name).unlink()
            return None
    else:
        result = lite_export.export_nb(model_file, params_file, stage_dir / name, lite_places,
                                       quant_type=lite_quant.QUANT_TYPES[precision])
    structure = (result.describe() if precision in ("int8", "fp16") else
                 f"weights stored as {WEIGHT_BITS[precision]}-bit integers, dequantized at load (float kernels)")
    if precision == "int8":
        structure += f"; {calibration_note(calib_method, calib)} (Paddle PTQ {lite_quant.PTQ_ALGOS[calib_method]})"
        structure += fed_note(ptq.get("fed"))
    return structure, _structural_check(stage_dir / name, result)


def calibration_note(method: str, calib) -> str:
    """Which data and method set an int8 artifact's activation ranges (its figures mean little without them)."""
    return f"activation ranges: {method} on {len(next(iter(calib.values())))} calibration samples"


def fed_note(fed) -> str:
    """What Paddle PTQ was really fed for the sequence inputs (read back from its LoD tensors), or ''."""
    parts = [f"{name} as {len(lengths)} LoD tensors of {min(lengths)}-{max(lengths)} rows ({sum(lengths)} rows)"
             for name, lengths in sorted(((fed or {}).get("sequence_lengths") or {}).items()) if lengths]
    return f"; PTQ fed {', '.join(parts)}" if parts else ""


LITE_WEIGHT_OPS = ("conv2d", "depthwise_conv2d", "conv2d_transpose", "fc", "matmul", "matmul_v2", "mul")


def lite_coverage(kernels) -> Dict[str, object]:
    """Weight layers of an optimized Lite program and how many run int8 kernels (opt's final program);
    weight and MAC shares are not in opt's log, so they stay unknown for a .nb."""
    layers = sum(n for (op, _), n in kernels.items() if op in LITE_WEIGHT_OPS)
    int8 = sum(n for (op, prec), n in kernels.items() if op in LITE_WEIGHT_OPS and prec == "int8")
    return {"quantized_layers": int8, "weight_layers": layers, "quantized_weights": None, "quantized_macs": None}


def _structural_check(nb_file: Path, result) -> str:
    """Re-read the written .nb with Lite and cross-check its calib ops against what opt logged."""
    ops = lite_quant.nb_program(nb_file)
    logged = sum(n for (op, _), n in result.kernels.items() if op == "calib")
    if ops.get("calib", 0) != logged:
        raise ToolError(f"{nb_file.name}: the written program has {ops.get('calib', 0)} calib ops, opt logged {logged}",
                        "report this model to wherry: the .nb does not hold the program opt described")
    return f"re-read by Lite: {sum(ops.values())} ops" + (f", calib x{logged}" if logged else "")


def _onnx_variant(stage: Path, precision: str, fp32_onnx: Path, calib, outputs, work: Path, notes,
                  calib_method: str = "minmax") -> List[Artifact]:
    name = f"model.{precision}.onnx"
    dst = stage / name
    try:
        if precision == "fp16":
            onnx_quant.to_fp16(fp32_onnx, dst)
        else:
            # ORT's quantizers want weights as initializers and known shapes: paddle2onnx output is
            # pre-processed once (shape inference, constant folding) for every quantized variant.
            prepared = onnx_quant.prepare(fp32_onnx, work)
            if precision.endswith("-weight"):
                count = onnx_quant.weight_only(prepared, dst, WEIGHT_BITS[precision])
            else:
                onnx_quant.static_int8(prepared, dst, calib, method=calib_method)
    except Exception as exc:  # noqa: BLE001 - ORT's tools raise plain ValueError/KeyError on graphs they cannot handle
        raise ToolError(f"ONNX Runtime could not make the {precision} ONNX artifact: {type(exc).__name__}: {exc}",
                        f"leave {precision} out of --precision for this model, or report it to wherry") from None
    if precision == "fp16":
        detail = ["float16 weights and math, float32 inputs/outputs"]
    elif precision == "int8":
        detail = [onnx_quant.int8_note(dst), calibration_note(calib_method, calib)]
    else:
        detail = [f"{count} weight(s) stored as {WEIGHT_BITS[precision]}-bit integers, dequantized to float in the "
                  "graph (activations stay float)"]
    return [_artifact(stage, name, "onnx", precision, "any", outputs, notes=detail)]
