"""ONNX export: paddle2onnx in a child process, then onnx.checker and an ONNX Runtime load.

Route (see docs/toolchain.md): paddle2onnx 1.3.1 converts legacy ProgramDescs correctly
(PP-OCRv4 det/rec/cls within 1.4e-6) but cannot read PIR; 2.1.0 reads PIR but
breaks real legacy models, and the two cannot share an environment. wherry
pins 1.3.1 and feeds it legacy programs only: PIR sources go through the
PIR->legacy translator first (convert.pir), so one tool version serves both.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from wherry.convert import child

log = logging.getLogger(__name__)

TOOL = "paddle2onnx"


@dataclass
class OnnxResult:
    onnx_file: Path
    opset: int
    seconds: float


def export_onnx(model_file: Path, params_file: Path, out_onnx: Path, opset: int,
                input_names: Optional[List[str]] = None,
                output_names: Optional[List[str]] = None) -> OnnxResult:
    """Convert a legacy model, check it, and make sure ONNX Runtime loads it.

    ``output_names`` renames the graph outputs (in order) so every artifact of a
    bundle exposes the reference model's names.
    """
    value, _, seconds = child.run(
        "wherry.convert.onnx_export:_export_in_child",
        {"model_file": str(model_file), "params_file": str(params_file), "out_onnx": str(out_onnx),
         "opset": opset, "input_names": input_names, "output_names": output_names},
        tool=TOOL, what=f"exporting ONNX opset {opset}", explain_crash=explain_crash)
    return OnnxResult(Path(value["onnx_file"]), int(value["opset"]), seconds)


# paddle2onnx aborts on an op it has no converter for, after naming them all
_UNSUPPORTED = re.compile(r"operators not supported yet, including ([\w,]+)")


def explain_crash(log_text: str) -> Optional[str]:
    """The hint for a paddle2onnx abort that named the ops it cannot convert (Paddle 1.x sequence ops: gru,
    sequence_pool, sequence_unpad), else None (the generic hint)."""
    found = _UNSUPPORTED.search(log_text)
    ops = [op for op in found.group(1).split(",") if op] if found else []
    if not ops:
        return None
    return (f"paddle2onnx {_version()} has no ONNX converter for {', '.join(ops)}: this model has no ONNX artifact; "
            "its Paddle Lite .nb is built and checked without it")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("paddle2onnx")
    except metadata.PackageNotFoundError:
        return ""


def _export_in_child(model_file, params_file, out_onnx, opset, input_names, output_names):
    import paddle2onnx

    # auto_upgrade_opset lets paddle2onnx raise the opset when an op needs it;
    # the opset actually written is read back from the model below.
    paddle2onnx.export(model_file, params_file, save_file=out_onnx, opset_version=opset,
                       auto_upgrade_opset=True, verbose=False, enable_onnx_checker=True,
                       enable_optimize=True)
    return finish(out_onnx, opset, input_names, output_names)


def finish(out_onnx, opset, input_names, output_names) -> dict:
    """After paddle2onnx (either version): rename the graph's inputs/outputs, check it, load it in ORT."""
    import onnx

    from wherry.runtimes.errors import WherryError

    if not Path(out_onnx).is_file():
        raise WherryError("paddle2onnx wrote no file", "see the log above for the op it could not convert")
    model = onnx.load(out_onnx)
    _rename(model.graph, "input", input_names)
    _rename(model.graph, "output", output_names)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, out_onnx)
    import onnxruntime as ort

    try:
        ort.InferenceSession(out_onnx, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - ORT raises several unrelated types
        raise WherryError(f"ONNX Runtime refuses the exported model: {exc}",
                          "the ONNX export is broken for this model; use the .nb artifact or report it") from None
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), opset)
    return {"onnx_file": out_onnx, "opset": int(version)}


def _rename(graph, kind: str, names) -> None:
    """Rename graph inputs or outputs (positionally) everywhere they are referenced."""
    if not names:
        return
    values = graph.input if kind == "input" else graph.output
    initializers = {i.name for i in graph.initializer}
    values = [v for v in values if v.name not in initializers]
    mapping = {v.name: new for v, new in zip(values, names) if v.name != new}
    if not mapping:
        return
    for v in values:
        if v.name in mapping:
            v.name = mapping[v.name]
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
