"""Model sources for the converter: a located model plus its interface and op list.

Locating files and reading a program's interface is shared with the Paddle
Inference backend (runtimes/paddle_model.py); this module adds what only the
converter needs: the op list, control-flow detection and the check that a
Paddle 1.x directory holds every parameter file.
"""
from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

from wherry.runtimes.errors import ModelError
from wherry.runtimes.paddle_model import ModelFiles, load_program_desc, locate, read_interface
from wherry.runtimes.specs import TensorSpec

log = logging.getLogger(__name__)

SourceError = ModelError  # the converter's name for it


@dataclass
class ModelInfo:
    files: ModelFiles
    inputs: List[TensorSpec]
    outputs: List[TensorSpec]
    ops: Counter = field(default_factory=Counter)
    has_control_flow: bool = False

    @property
    def format(self) -> str:
        return self.files.format


def read(path) -> ModelInfo:
    """Locate a model and read its interface and op list without running it."""
    files = locate(path)
    interface = read_interface(files)
    if files.format == "paddle1" and files.params_file is None:
        _check_params_present(files)
    return ModelInfo(files, interface.inputs, interface.outputs, interface.ops, interface.control_flow)


def _check_params_present(files: ModelFiles) -> None:
    missing = [n for n in persistable_names(files.model_file) if not (files.param_dir / n).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise SourceError(f"{len(missing)} parameter file(s) missing from {files.param_dir}: {shown}",
                          "copy the whole Paddle 1.x model directory")


# Ops whose "Out" is a variable-length set of detections [class, score, x1, y1, x2, y2].
NMS_OPS = ("multiclass_nms", "multiclass_nms2", "multiclass_nms3", "matrix_nms")


# Ops that keep a set of detection rows a set of rows, each row on its own: an export's trailing `scale`
# (PaddleDetection's exported programs fetch the NMS output through `scale` with scale 1), `assign`, `cast`.
ROW_WISE_OPS = ("scale", "assign", "cast")


def detection_outputs(model_file: Path) -> List[int]:
    """Positions (fetch columns) of the outputs an NMS op produces (directly or through row-wise ops): they are
    compared as sets of detections."""
    block = load_program_desc(model_file).blocks[0]
    made_by_nms = {o.arguments[0] for op in block.ops if op.type in NMS_OPS
                   for o in op.outputs if o.parameter == "Out" and len(o.arguments)}
    for op in block.ops:   # program order: a chain of row-wise ops carries the set to the fetch
        if op.type in ROW_WISE_OPS and any(a in made_by_nms for i in op.inputs if i.parameter == "X"
                                           for a in i.arguments):
            made_by_nms.update(a for o in op.outputs if o.parameter == "Out" for a in o.arguments)
    columns = []
    for op in block.ops:
        if op.type == "fetch" and op.inputs[0].arguments[0] in made_by_nms:
            columns.append(next((a.i for a in op.attrs if a.name == "col"), 0))
    return sorted(columns)


def persistable_names(model_file: Path) -> List[str]:
    """Parameter names of a legacy program, in the order a combined params file stores them (sorted)."""
    program = load_program_desc(model_file)
    return sorted(v.name for v in program.blocks[0].vars if v.persistable and v.name not in ("feed", "fetch"))


def source_sha256(path: Path) -> str:
    """sha256 of a source model file, as the manifest records it (`wherry debug` checks --model by it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
