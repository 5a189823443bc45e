"""Legalization: repair what current Paddle exports break in Paddle Lite and paddle2onnx.

Each repair is a small named pass over a legacy ProgramDesc (protobuf) and, when it changes the set
of persistable variables, the combined parameter file. A pass returns one line per change so the
conversion report says exactly what was touched. The ORIGINAL model stays the reference for golden
outputs; only the downstream tools see the legalized copy.

What Lite needs is not guessed per model: ``lite_ops.json`` is the table of what Paddle Lite's op
parsers read (attribute names and the exact attribute type each is read as, and the input/output
slots each dereferences), derived from Lite's sources by ``scripts/lite_op_table.py``; what an
attribute means when it is absent comes from Paddle's own op definitions (the defaults Paddle
Inference itself applies). The passes bring a program from what Paddle writes to what Lite reads.
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional

import numpy as np

from wherry.convert import params as params_io
from wherry.convert import paddle_registry
from wherry.convert.programdesc import set_attr
from wherry.runtimes.paddle_model import framework_proto

log = logging.getLogger(__name__)

LITE_OPS_TABLE = Path(__file__).with_name("lite_ops.json")


@dataclass(frozen=True)
class Pass:
    name: str
    why: str
    apply: Callable[["Program"], List[str]]  # Program -> changes made


PASSES: Dict[str, Pass] = {}


def legalization_pass(name: str, why: str):
    def register(func):
        PASSES[name] = Pass(name, why, func)
        return func
    return register


@dataclass
class Program:
    """The ProgramDesc under repair and, loaded only when a pass needs it, its parameter records."""
    desc: Any   # a framework_pb2.ProgramDesc (no static type: the protobuf module is made at run time)
    params_file: Path
    _records: Optional[List[params_io.Record]] = None
    params_changed: bool = False

    def records(self) -> List[params_io.Record]:
        if self._records is None:
            self._records = params_io.read(self.params_file, persistable_names(self.desc))
        return self._records

    def set_records(self, records: List[params_io.Record]) -> None:
        self._records = records
        self.params_changed = True


def persistable_names(desc) -> List[str]:
    """Names of the variables the combined parameter file stores (block 0 persistables but feed/fetch)."""
    framework_pb2 = framework_proto()

    holders = (framework_pb2.VarType.FEED_MINIBATCH, framework_pb2.VarType.FETCH_LIST)
    return sorted(v.name for v in desc.blocks[0].vars if v.persistable and v.type.type not in holders)


@lru_cache(maxsize=None)
def lite_ops() -> dict:
    """op type -> {"attrs": {name: {"type": AttrType name, "unconditional": bool}}, "inputs", "outputs"}."""
    return json.loads(LITE_OPS_TABLE.read_text())


@lru_cache(maxsize=None)
def paddle_defaults(op_type: str) -> dict:
    """The attribute defaults Paddle applies to ``op_type`` when a program omits them (incl. "extra" ones)."""
    entry = paddle_registry.op(op_type)
    if entry is None or entry["defaults"] is None:  # an op Paddle does not define (custom / Lite-only)
        return {}
    defaults = dict(entry["extra"] or {})
    defaults.update(entry["defaults"])
    # Inference programs run with is_test = true (Paddle Inference's is_test pass sets it on every op).
    if "is_test" in defaults:
        defaults["is_test"] = True
    return defaults


def paddle_slots(op_type: str, kind: Literal["inputs", "outputs"]) -> tuple:
    """Input or output slot names of ``op_type`` in Paddle's op definition."""
    entry = paddle_registry.op(op_type)
    return tuple(entry[kind]) if entry is not None else ()


def _find_var(block, name):
    return next((v for v in block.vars if v.name == name), None)


def _attr(op, name):
    return next((a for a in op.attrs if a.name == name), None)


def _slot(slots, name):
    return next((s for s in slots if s.parameter == name and len(s.arguments)), None)


def _first_output(op) -> str:
    return next((o.arguments[0] for o in op.outputs if len(o.arguments)), "?")


def _tensor(var):
    return var.type.dense_tensor.tensor  # "lod_tensor" before Paddle 3 (same field number)


def _add_var(block, name: str, like_dtype: int, dims) -> None:
    framework_pb2 = framework_proto()

    var = block.vars.add()
    var.name = name
    var.type.type = framework_pb2.VarType.DENSE_TENSOR
    _tensor(var).data_type = like_dtype
    _tensor(var).dims.extend(dims)
    var.persistable = False


def _input_dtype(block, op) -> int:
    framework_pb2 = framework_proto()

    for slot in op.inputs:
        var = _find_var(block, slot.arguments[0]) if len(slot.arguments) else None
        if var is not None:
            return _tensor(var).data_type
    return framework_pb2.VarType.FP32


# Ops whose inference form once carried an XShape output that Paddle >= 2.6 clips away
# (clip_extra=True). Lite's variable_place_inference_pass dereferences it.
_XSHAPE_OPS = ("flatten_contiguous_range",)


@legalization_pass("add-xshape", "Paddle Lite (x86) segfaults in variable_place_inference_pass on "
                                 "flatten_contiguous_range without its XShape output (clipped by Paddle >= 2.6)")
def add_xshape(program: Program) -> List[str]:
    changes = []
    for block in program.desc.blocks:
        for op in block.ops:
            if op.type not in _XSHAPE_OPS or any(o.parameter == "XShape" for o in op.outputs):
                continue
            x_name = next(i.arguments[0] for i in op.inputs if i.parameter == "X")
            out_name = next(o.arguments[0] for o in op.outputs if o.parameter == "Out")
            x_var = _find_var(block, x_name)
            xshape_name = out_name + ".xshape"
            # Paddle's convention: XShape holds [0] + input dims (shape only, no data).
            _add_var(block, xshape_name, _input_dtype(block, op), [0] + list(_tensor(x_var).dims if x_var else []))
            slot = op.outputs.add()
            slot.parameter = "XShape"
            slot.arguments.append(xshape_name)
            changes.append(f"{op.type} {x_name} -> {out_name}: added XShape output {xshape_name}")
    return changes


@legalization_pass("restore-attrs", "Paddle Lite aborts when an attribute its op parser reads was left out of the "
                                    "export (clip_extra drops relu6.threshold, swish.beta, ...); Paddle applies a "
                                    "default for it, Lite does not")
def restore_attrs(program: Program) -> List[str]:
    changes = []
    table = lite_ops()
    for block in program.desc.blocks:
        for op in block.ops:
            wanted = table.get(op.type, {}).get("attrs", {})
            for name, read in sorted(wanted.items()):
                if _attr(op, name) is not None or read["type"] == "AMBIGUOUS" or not read["unconditional"]:
                    continue  # reads guarded by HasAttr have Lite's own fallback
                defaults = paddle_defaults(op.type)
                if name not in defaults:
                    continue  # Paddle defines no meaning for it: nothing faithful to restore
                value = defaults[name]
                attr = op.attrs.add()
                attr.name = name
                try:
                    set_attr(attr, read["type"], value)
                except (TypeError, ValueError):  # Paddle's default does not fit the type Lite reads
                    op.attrs.remove(attr)
                    log.info("restore-attrs: %s.%s: Paddle's default %r does not fit Lite's %s; left out",
                             op.type, name, value, read["type"])
                    continue
                changes.append(f"{op.type} -> {_first_output(op)}: restored attribute {name}={value!r} "
                               f"({read['type']})")
    return changes


_INT32 = np.iinfo(np.int32)
_WIDTHS = {("LONGS", "INTS"): "ints", ("INTS", "LONGS"): "longs", ("LONG", "INT"): "i", ("INT", "LONG"): "l"}


@legalization_pass("attr-widths", "Paddle Lite aborts when an integer attribute is stored with another width than "
                                  "its op parser reads (Paddle >= 2.6 writes reduce dims as int64 lists, Lite reads "
                                  "int32)")
def attr_widths(program: Program) -> List[str]:
    framework_pb2 = framework_proto()

    names = {v: k for k, v in framework_pb2.AttrType.items()}
    changes = []
    table = lite_ops()
    for block in program.desc.blocks:
        for op in block.ops:
            wanted = table.get(op.type, {}).get("attrs", {})
            for attr in op.attrs:
                want = wanted.get(attr.name, {}).get("type")
                have = names.get(attr.type)
                if have is None or (have, want) not in _WIDTHS:
                    continue
                values = list(attr.longs if have == "LONGS" else attr.ints) if have.endswith("S") \
                    else [attr.l if have == "LONG" else attr.i]
                clamped = [int(np.clip(v, _INT32.min, _INT32.max)) for v in values] if want.startswith("INT") \
                    else values
                if have.endswith("S"):
                    attr.ClearField("longs" if have == "LONGS" else "ints")
                set_attr(attr, want, clamped if want.endswith("S") else clamped[0])
                note = " (values beyond int32 clamped: they mean 'to the end')" if clamped != values else ""
                changes.append(f"{op.type} -> {_first_output(op)}: attribute {attr.name} {have} -> {want}{note}")
    return changes


@legalization_pass("add-outputs", "Paddle Lite aborts when an op lacks an output its op parser requires "
                                  "(instance_norm without SavedMean/SavedVariance, as Paddle >= 2.6 exports it)")
def add_outputs(program: Program) -> List[str]:
    changes = []
    table = lite_ops()
    for block in program.desc.blocks:
        for op in block.ops:
            required = table.get(op.type, {}).get("outputs", [])
            defined = paddle_slots(op.type, "outputs")
            for name in required:
                if name not in defined or _slot(op.outputs, name) is not None:
                    continue  # only outputs Paddle's own definition has: Lite fills them, nobody reads them
                var_name = f"{_first_output(op)}.{name.lower()}"
                _add_var(block, var_name, _input_dtype(block, op), [-1])
                slot = _slot_for(op.outputs, name)
                slot.arguments.append(var_name)
                changes.append(f"{op.type} -> {_first_output(op)}: added output {name} ({var_name})")
    return changes


def _slot_for(slots, name):
    """The (possibly empty) slot called ``name``, created if absent."""
    slot = next((s for s in slots if s.parameter == name), None)
    if slot is None:
        slot = slots.add()
        slot.parameter = name
    return slot


# Ops whose "shape" attribute makes their output; an empty shape is a 0-D tensor (reshape2: a 1-element
# tensor made 0-D, as PIR programs do before stacking scalars into a shape).
_SHAPE_MAKERS = ("fill_constant", "gaussian_random", "uniform_random", "fill_any_like", "full_like", "reshape2")


@legalization_pass("zero-d", "Paddle Lite cannot run 0-D tensors (fill_constant shape=[] from `x > 0`, Python `if` "
                             "on a tensor, paddle.full([])): the .nb builds, then aborts at run time; a 1-element "
                             "tensor broadcasts the same way")
def zero_d(program: Program) -> List[str]:
    framework_pb2 = framework_proto()

    changes = []
    for block in program.desc.blocks:
        for op in block.ops:
            shape = _attr(op, "shape")
            if op.type not in _SHAPE_MAKERS or shape is None or len(shape.longs) or len(shape.ints):
                continue
            if any(len(s.arguments) for s in op.inputs if s.parameter.startswith("ShapeTensor")
                   or s.parameter == "Shape"):
                continue  # the shape comes from a tensor at run time
            if shape.type == framework_pb2.AttrType.LONGS:
                shape.longs.append(1)
            else:
                shape.ints.append(1)
            changes.append(f"{op.type} -> {_first_output(op)}: shape [] -> [1]")
        # Only values that flow into another op: an unused 0-D side output (batch_norm's saved statistics)
        # is never materialized, and its declared shape is other tools' business.
        consumed = {name for program_block in program.desc.blocks for op in program_block.ops
                    for slot in op.inputs for name in slot.arguments}
        for var in block.vars:
            if var.type.type == framework_pb2.VarType.DENSE_TENSOR and not var.persistable \
                    and len(_tensor(var).dims) == 0 and var.name in consumed:
                _tensor(var).dims.append(1)
                changes.append(f"variable {var.name}: 0-D -> [1]")
    return changes


@legalization_pass("unpersist-empty", "Paddle Lite aborts loading a zero-size persistable variable (the dropout "
                                      "state of an RNN layer: 'The input tensor has not initialized')")
def unpersist_empty(program: Program) -> List[str]:
    block = program.desc.blocks[0]
    names = set(persistable_names(program.desc))
    if not names:
        return []
    records = program.records()
    empty = [r for r in records if r.numel == 0]
    if not empty:
        return []
    changes = []
    for record in empty:
        var = _find_var(block, record.name)
        var.persistable = False
        changes.append(f"variable {record.name} (dims {record.dims}): zero-size, no longer persistable")
    program.set_records([r for r in records if r.numel != 0])
    return changes


@legalization_pass("layer-norm-affine", "Paddle Lite crashes (SIGSEGV) on layer_norm without Scale/Bias "
                                        "(functional layer_norm): give it explicit ones/zeros, the identity affine")
def layer_norm_affine(program: Program) -> List[str]:
    block = program.desc.blocks[0]
    changes, added = [], []
    if not any(op.type == "layer_norm" for op in block.ops):
        return []
    records = program.records()  # read before new persistables change the file's expected layout
    for op in block.ops:
        if op.type != "layer_norm":
            continue
        missing = [s for s in ("Scale", "Bias") if _slot(op.inputs, s) is None]
        if not missing:
            continue
        x = _find_var(block, _slot(op.inputs, "X").arguments[0])
        begin = _attr(op, "begin_norm_axis")
        dims = list(_tensor(x).dims) if x is not None else []
        axis = begin.i if begin is not None else 1
        tail = dims[axis:]
        if not tail or any(d < 0 for d in tail):
            changes.append(f"layer_norm -> {_first_output(op)}: normalized dims {tail} not static, left as is")
            continue
        size = int(np.prod(tail))
        for slot_name in missing:
            name = f"{_first_output(op)}.{slot_name.lower()}_identity"
            value = np.ones(size, np.float32) if slot_name == "Scale" else np.zeros(size, np.float32)
            _add_var(block, name, _tensor(x).data_type, [size])
            _find_var(block, name).persistable = True
            _slot_for(op.inputs, slot_name).arguments.append(name)
            added.append(params_io.make(name, value.astype(_numpy_dtype(_tensor(x).data_type))))
            changes.append(f"layer_norm -> {_first_output(op)}: added {slot_name} {name} "
                           f"({'ones' if slot_name == 'Scale' else 'zeros'}[{size}])")
    if added:
        program.set_records(records + added)
    return changes


@legalization_pass("identity-adaptive-pool", "Paddle Lite's ARM pool2d takes an adaptive pool whose output size "
                                             "equals its input size for a global pool (it compares ksize, which "
                                             "means the output size there, with the input size) and writes one "
                                             "mean per channel into the whole output; such a pool is the identity, "
                                             "which a 1x1 stride-1 pool computes on every runtime")
def identity_adaptive_pool(program: Program) -> List[str]:
    changes = []
    for block in program.desc.blocks:
        for op in block.ops:
            adaptive, ksize = _attr(op, "adaptive"), _attr(op, "ksize")
            glob = _attr(op, "global_pooling")
            if op.type != "pool2d" or adaptive is None or not adaptive.b or ksize is None or (glob and glob.b):
                continue
            fmt = _attr(op, "data_format")
            if fmt is not None and fmt.s not in ("NCHW", "AnyLayout"):
                continue
            x = _find_var(block, _slot(op.inputs, "X").arguments[0]) if _slot(op.inputs, "X") else None
            dims = list(_tensor(x).dims) if x is not None else []
            if len(dims) != 4 or list(ksize.ints) != dims[2:] or min(dims[2:]) < 1 or dims[2:] == [1, 1]:
                continue  # unknown or different sizes: a real adaptive pool, which Lite computes right
            adaptive.b = False
            for name, value in (("ksize", [1, 1]), ("strides", [1, 1]), ("paddings", [0, 0])):
                attr = _attr(op, name)
                if attr is not None:
                    del attr.ints[:]
                    attr.ints.extend(value)
            changes.append(f"pool2d -> {_first_output(op)}: adaptive to {dims[2:]} from {dims[2:]} (the identity) "
                           "-> 1x1 stride-1 pool")
    return changes



@legalization_pass("dynamic-adaptive-pool", "Paddle Lite's ARM pool2d picks its kernel at run time from ksize, "
                                            "strides and the input size: an adaptive pool (ksize is its output "
                                            "size) with equal strides is taken for a global pool when the input "
                                            "happens to be as large as the output, and for a 3x3 stride-1 window "
                                            "when it pools to 3x3; an adaptive pool ignores strides everywhere "
                                            "else (Paddle, Lite's shape inference, its x86 and generic ARM "
                                            "kernels), so unequal strides keep Lite's ARM kernel on the adaptive "
                                            "path at every input size")
def dynamic_adaptive_pool(program: Program) -> List[str]:
    """The run-time twin of identity-adaptive-pool: a pool whose input size is not known when converting (a
    model with dynamic spatial dims) may meet its output size at one input shape and not at another, so it
    cannot be replaced; its strides are made unequal instead, which only Lite's ARM kernel choice reads."""
    changes = []
    for block in program.desc.blocks:
        for op in block.ops:
            adaptive, ksize, strides = _attr(op, "adaptive"), _attr(op, "ksize"), _attr(op, "strides")
            glob = _attr(op, "global_pooling")
            if op.type != "pool2d" or adaptive is None or not adaptive.b or ksize is None or strides is None \
                    or (glob and glob.b) or list(ksize.ints) == [1, 1]:
                continue   # [1, 1]: a global pool on every runtime, which Lite's global kernel computes right
            fmt = _attr(op, "data_format")
            if fmt is not None and fmt.s not in ("NCHW", "AnyLayout"):
                continue
            x = _find_var(block, _slot(op.inputs, "X").arguments[0]) if _slot(op.inputs, "X") else None
            dims = list(_tensor(x).dims) if x is not None else []
            if len(dims) != 4 or min(dims[2:]) >= 1 or len(strides.ints) != 2 or strides.ints[0] != strides.ints[1]:
                continue   # known input size (identity-adaptive-pool's case, or a real adaptive pool) or unequal
            del strides.ints[:]
            strides.ints.extend([1, 2])
            changes.append(f"pool2d -> {_first_output(op)}: adaptive to {list(ksize.ints)} from a run-time size "
                           "-> strides [1, 2] (ignored by an adaptive pool; keeps Lite's ARM kernel adaptive)")
    return changes

def _numpy_dtype(data_type: int):
    return {4: np.float16, 5: np.float32, 6: np.float64}.get(data_type, np.float32)


def legalize(model_file: Path, params_file: Path, out_dir: Path, passes=None):
    """Write a legalized copy of a legacy model into out_dir; return (model, params, changes)."""
    from wherry.convert.source import load_program_desc

    program = Program(load_program_desc(model_file), Path(params_file))
    changes: List[str] = []
    for name in (PASSES if passes is None else passes):
        made = PASSES[name].apply(program)
        for line in made:
            log.info("legalize %s: %s", name, line)
        changes += [f"{name}: {line}" for line in made]
    out_dir.mkdir(parents=True, exist_ok=True)
    out_model = out_dir / "model.pdmodel"
    out_params = out_dir / "model.pdiparams"
    out_model.write_bytes(program.desc.SerializeToString())
    if program.params_changed:
        params_io.write(out_params, program.records())
    elif Path(params_file).resolve() != out_params.resolve():
        shutil.copyfile(params_file, out_params)
    return out_model, out_params, changes
