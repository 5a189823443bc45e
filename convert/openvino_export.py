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
from typing import List, Optional

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
    value, _, seconds = tool_env.run(
        ENV, "wherry.convert.openvino_export:_export_in_child",
        {"onnx": str(onnx), "out_xml": str(out_xml), "precision": precision,
         "calib_npz": str(calib_npz) if calib_npz else None},
        tool=TOOL, what=f"converting the ONNX artifact to an {precision} IR")
    notes = [f"{TOOL} IR from the ONNX artifact in {seconds:.1f} s"]
    if precision == "int8":
        notes.append(f"int8: NNCF {NNCF_VERSION} post-training quantization on {value['samples']} calibration "
                     f"sample(s); {value['fake_quantize']} FakeQuantize node(s)")
    return notes


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
