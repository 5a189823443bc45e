"""Legalization: repair what current Paddle exports break in Paddle Lite and paddle2onnx.

Each repair is a small named pass over a legacy ProgramDesc (protobuf). A pass
returns one line per change so the conversion report says exactly what was
touched. The ORIGINAL model stays the reference for golden outputs; only the
downstream tools see the legalized copy.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pass:
    name: str
    why: str
    apply: Callable[[object], List[str]]  # ProgramDesc -> changes made


PASSES: Dict[str, Pass] = {}


def legalization_pass(name: str, why: str):
    def register(func):
        PASSES[name] = Pass(name, why, func)
        return func
    return register


def _find_var(block, name):
    return next((v for v in block.vars if v.name == name), None)


def _attr(op, name):
    return next((a for a in op.attrs if a.name == name), None)


# Ops whose inference form once carried an XShape output that Paddle >= 2.6 clips away
# (clip_extra=True). Lite's variable_place_inference_pass dereferences it.
_XSHAPE_OPS = ("flatten_contiguous_range",)


@legalization_pass("add-xshape", "Paddle Lite (x86) segfaults in variable_place_inference_pass on "
                                 "flatten_contiguous_range without its XShape output (clipped by Paddle >= 2.6)")
def add_xshape(program) -> List[str]:
    from paddle.base.proto import framework_pb2

    changes = []
    for block in program.blocks:
        for op in block.ops:
            if op.type not in _XSHAPE_OPS or any(o.parameter == "XShape" for o in op.outputs):
                continue
            x_name = next(i.arguments[0] for i in op.inputs if i.parameter == "X")
            out_name = next(o.arguments[0] for o in op.outputs if o.parameter == "Out")
            x_var = _find_var(block, x_name)
            xshape_name = out_name + ".xshape"
            var = block.vars.add()
            var.name = xshape_name
            var.type.type = framework_pb2.VarType.DENSE_TENSOR
            tensor = var.type.dense_tensor.tensor
            tensor.data_type = x_var.type.dense_tensor.tensor.data_type if x_var else framework_pb2.VarType.FP32
            # Paddle's convention: XShape holds [0] + input dims (shape only, no data).
            tensor.dims.extend([0] + list(x_var.type.dense_tensor.tensor.dims if x_var else []))
            var.persistable = False
            slot = op.outputs.add()
            slot.parameter = "XShape"
            slot.arguments.append(xshape_name)
            changes.append(f"{op.type} {x_name} -> {out_name}: added XShape output {xshape_name}")
    return changes


# Attributes that clip_extra drops but Lite's op parsers read unconditionally.
_DEFAULT_ATTRS = {
    "relu6": [("threshold", "f", 6.0)],
}


@legalization_pass("restore-attrs", "Paddle Lite aborts on ops whose attributes were clipped at export "
                                    "(relu6 without threshold)")
def restore_attrs(program) -> List[str]:
    from paddle.base.proto import framework_pb2

    kinds = {"f": framework_pb2.AttrType.FLOAT, "i": framework_pb2.AttrType.INT,
             "b": framework_pb2.AttrType.BOOLEAN}
    changes = []
    for block in program.blocks:
        for op in block.ops:
            for name, kind, value in _DEFAULT_ATTRS.get(op.type, ()):
                if _attr(op, name) is not None:
                    continue
                attr = op.attrs.add()
                attr.name = name
                attr.type = kinds[kind]
                setattr(attr, kind, value)
                out = op.outputs[0].arguments[0] if op.outputs else "?"
                changes.append(f"{op.type} -> {out}: restored attribute {name}={value}")
    return changes


def legalize(model_file: Path, params_file: Path, out_dir: Path, passes=None):
    """Write a legalized copy of a legacy model into out_dir; return (model, params, changes)."""
    from wherry.convert.source import load_program_desc

    program = load_program_desc(model_file)
    changes: List[str] = []
    for name in (PASSES if passes is None else passes):
        made = PASSES[name].apply(program)
        for line in made:
            log.info("legalize %s: %s", name, line)
        changes += [f"{name}: {line}" for line in made]
    out_dir.mkdir(parents=True, exist_ok=True)
    out_model = out_dir / "model.pdmodel"
    out_params = out_dir / "model.pdiparams"
    out_model.write_bytes(program.SerializeToString())
    if params_file.resolve() != out_params.resolve():
        shutil.copyfile(params_file, out_params)
    return out_model, out_params, changes
