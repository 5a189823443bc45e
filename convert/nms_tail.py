"""Export without the NMS tail: the common deployment choice for detectors.

NMS (multiclass_nms*, matrix_nms) is cheap, data-dependent post-processing that runtimes implement
differently; many deployments run the network up to the raw boxes and class scores and apply NMS in
their own code. ``cut`` rewrites a legacy program so that it ends there: each NMS op whose detections
the model returns is removed and the model returns its inputs (boxes [N, M, 4] and scores [N, C, M])
instead. The NMS settings are returned so the bundle can say what the device must apply.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

from wherry.runtimes.errors import WherryError

from .programdesc import attr_value
from .source import NMS_OPS, load_program_desc

_SETTINGS = ("score_threshold", "nms_threshold", "nms_top_k", "keep_top_k", "normalized", "background_label",
             "nms_eta", "post_threshold", "use_gaussian", "gaussian_sigma")


@dataclass
class CutModel:
    model_file: Path
    params_file: Path
    notes: List[str] = field(default_factory=list)


def cut(model_file: Path, params_file: Path, out_dir: Path) -> CutModel:
    program = load_program_desc(model_file)
    block = program.blocks[0]
    fetched = {op.inputs[0].arguments[0]: op for op in block.ops if op.type == "fetch"}
    notes, new_outputs, dropped = [], [], set()
    for op in [op for op in block.ops if op.type in NMS_OPS]:
        outs = {o.parameter: o.arguments[0] for o in op.outputs if len(o.arguments)}
        if outs.get("Out") not in fetched:
            continue
        boxes = next(i.arguments[0] for i in op.inputs if i.parameter == "BBoxes")
        scores = next(i.arguments[0] for i in op.inputs if i.parameter == "Scores")
        settings = {a.name: attr_value(a) for a in op.attrs if a.name in _SETTINGS}
        dropped |= set(outs.values())
        new_outputs += [boxes, scores]
        notes.append(f"NMS tail removed (--without-nms): {op.type} no longer runs; the model returns its boxes "
                     f"{boxes!r} and class scores {scores!r}; apply {op.type} on the device with "
                     + ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in sorted(settings.items())))
        block.ops.remove(op)
    if not notes:
        raise WherryError("--without-nms: the model returns no NMS output (multiclass_nms*, matrix_nms)",
                          "drop --without-nms for this model")
    kept = [name for name in (op.inputs[0].arguments[0] for op in block.ops if op.type == "fetch")
            if name not in dropped]
    template = next(op for op in block.ops if op.type == "fetch")
    for op in [op for op in block.ops if op.type == "fetch"]:
        block.ops.remove(op)
    for col, name in enumerate(kept + new_outputs):
        fetch = block.ops.add()
        fetch.CopyFrom(template)
        fetch.inputs[0].arguments[:] = [name]
        next(a for a in fetch.attrs if a.name == "col").i = col
    out_dir.mkdir(parents=True, exist_ok=True)
    out_model, out_params = out_dir / "model.pdmodel", out_dir / "model.pdiparams"
    out_model.write_bytes(program.SerializeToString())
    shutil.copyfile(params_file, out_params)
    return CutModel(out_model, out_params, notes)
