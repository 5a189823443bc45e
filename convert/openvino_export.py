"""OpenVINO IR from the bundle's ONNX: ``model.xml`` + ``model.bin`` (fp32), ``model.int8.xml`` (NNCF PTQ).

OpenVINO 2026.4.1 and NNCF 3.4.0 live in a cached venv of their own (``tool_env``, ~520 MB), and the
conversion runs in a child of that venv's Python: ``ov.convert_model`` reads the ONNX artifact wherry
already made, so the IR has the same graph, input and output names. fp32 is saved with
``compress_to_fp16=False`` (``save_model`` stores fp16 weights by default, which is not the fp32
artifact the manifest would claim). int8 is NNCF's post-training quantization on the bundle's
calibration samples (``--calib``), one sample per batch.

The IR is then checked against the golden outputs in that same venv, with the runner a board runs
(``python -m wherry.runtimes check``) and wherry's OpenVINO backend, in f32 (see
``runtimes/backends/openvino_backend.py``: this kind of CPU defaults to bf16), by the same tolerance
policy as every artifact. OpenVINO's PyPI wheel compiles for the CPU only; its NPU and GPU plugins need
the vendor's drivers, so those devices are not claimed.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional, Tuple

from wherry.convert import tool_env
from wherry.runtimes.errors import WherryError

FORMAT = "openvino"
VERSION = "2026.4.1"
NNCF_VERSION = "3.4.0"
TOOL = f"OpenVINO {VERSION}"
ENV = tool_env.ToolEnv("openvino", (f"openvino=={VERSION}", f"nncf=={NNCF_VERSION}"),
                       label=f"OpenVINO {VERSION} + NNCF {NNCF_VERSION}")
PRECISIONS = ("fp32", "int8")
# the artifact's arch tag: an IR holds no machine code (OpenVINO compiles it when it loads it)
ARCH = "any"
VERIFIED_ON = f"OpenVINO {VERSION}'s CPU plugin in f32, in wherry's OpenVINO environment"


def file_name(precision: str) -> str:
    return "model.xml" if precision == "fp32" else f"model.{precision}.xml"


def export(onnx: Path, out_xml: Path, precision: str, calib_npz: Optional[Path] = None,
           shapes: Optional[dict] = None, **_context) -> List[str]:
    """Write ``out_xml`` (and its .bin) from ``onnx``; returns notes for the artifact. ``shapes`` (the golden
    inputs') are not needed: the IR keeps the ONNX's dynamic dimensions."""
    source, squeezes = _explicit_squeeze_axes(onnx, out_xml.with_name(out_xml.stem + ".source.onnx"))
    try:
        value, _, seconds = tool_env.run(
            ENV, "wherry.convert.openvino_export:_export_in_child",
            {"onnx": str(source), "out_xml": str(out_xml), "precision": precision,
             "calib_npz": str(calib_npz) if calib_npz else None},
            tool=TOOL, what=f"converting the ONNX artifact to an {precision} IR")
    finally:
        if source != onnx:
            source.unlink(missing_ok=True)
    notes = [f"{TOOL} IR from the ONNX artifact in {seconds:.1f} s"]
    if squeezes:
        notes.append(f"{squeezes} Squeeze node(s) without axes given the axes shape inference proves are 1 (OpenVINO's "
                     "CPU plugin cannot compile a Squeeze whose output rank depends on the data)")
    if precision == "int8":
        notes.append(f"int8: NNCF {NNCF_VERSION} post-training quantization on {value['samples']} calibration "
                     f"sample(s); {value['fake_quantize']} FakeQuantize node(s)")
    return notes


def _explicit_squeeze_axes(onnx: Path, scratch: Path) -> Tuple[Path, int]:
    """``onnx``, or a copy at ``scratch`` in which each Squeeze without axes names the axes it removes.

    paddle2onnx writes NMS's index column as Gather(selected, [1]) -> Squeeze() with no axes: its output is
    [N] when N > 1 and a scalar when one box survives, a rank OpenVINO's CPU plugin cannot compile ("Squeeze
    operation with dynamic rank"). Where shape inference knows the input's rank and which dims are 1, those
    axes are written out: the [N, 1] column becomes [N] for every N, which is what the export meant."""
    import numpy as np
    import onnx as onnx_lib
    from onnx import helper, numpy_helper, shape_inference

    model = onnx_lib.load(str(onnx))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    inferred = shape_inference.infer_shapes(model)
    known = {v.name: v.type.tensor_type.shape for v in list(inferred.graph.value_info) + list(inferred.graph.input)
             if v.type.tensor_type.HasField("shape")}
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Squeeze" or len(node.input) > 1 or any(a.name == "axes" for a in node.attribute):
            continue
        shape = known.get(node.input[0])
        if shape is None:
            continue
        dims = [d.dim_value if d.HasField("dim_value") else None for d in shape.dim]
        axes = [i for i, d in enumerate(dims) if d == 1]
        if not axes or 0 in dims:
            continue
        if opset >= 13:
            name = f"{node.name or node.output[0]}.axes"
            model.graph.initializer.append(numpy_helper.from_array(np.array(axes, dtype=np.int64), name))
            node.input.append(name)
        else:
            node.attribute.append(helper.make_attribute("axes", axes))
        changed += 1
    if not changed:
        return onnx, 0
    onnx_lib.save(model, str(scratch))
    return scratch, changed


def _export_in_child(onnx: str, out_xml: str, precision: str, calib_npz: Optional[str]) -> dict:
    import openvino as ov

    from wherry.convert import edge_calibration

    start = time.perf_counter()
    model = ov.convert_model(onnx)
    samples = 0
    if precision == "int8":
        import nncf

        names = {p.any_name for p in model.inputs}
        if calib_npz is None:   # never: int8 without --calib is refused before any work (quantize.check_precisions)
            raise WherryError("int8 needs calibration data (--calib)")
        calib = edge_calibration.read(calib_npz, names)
        samples = len(next(iter(calib.values())))
        items = [{name: calib[name][i:i + 1] for name in names} for i in range(samples)]
        model = nncf.quantize(model, nncf.Dataset(items), subset_size=samples)
    elif precision != "fp32":
        raise WherryError(f"wherry builds OpenVINO IR in {' and '.join(PRECISIONS)}, not {precision}")
    ov.save_model(model, out_xml, compress_to_fp16=False)
    fake = sum(1 for op in model.get_ops() if op.get_type_name() == "FakeQuantize")
    if precision == "int8" and not fake:
        raise WherryError("NNCF quantized no layer of this model (no FakeQuantize node in the IR)")
    return {"version": ov.__version__.split("-")[0], "samples": samples, "fake_quantize": fake,
            "seconds": time.perf_counter() - start}
