"""Building a legacy ProgramDesc while walking a PIR program.

``Builder`` owns the name of every PIR value in the legacy program, the
constants (``full`` / ``full_int_array`` results, which legacy ops take as
attributes), vectors (``builtin.combine``) and the protobuf being written.
Op translators (ops.py) only ask it for names, constants and to emit ops.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from wherry.convert.programdesc import FIELD_KINDS, set_attr
from wherry.runtimes.paddle_model import PROTO_DTYPES, framework_proto

from .reader import PirOp, PirProgram, Value

# numpy dtype name -> framework.proto VarType.Type number
PROTO_DTYPE = {name: number for number, name in PROTO_DTYPES.items()}


class TranslationError(Exception):
    """An op cannot be expressed in the legacy program (raised per op, collected by translate())."""


class UpstreamFailed(TranslationError):
    """An operand comes from an op that could not be translated (reported there, not again)."""


# Typed attribute constructors: legacy ops read attributes with a fixed type.
def INT(v): return ("i", int(v))
def FLOAT(v): return ("f", float(v))
def STRING(v): return ("s", str(v))
def BOOL(v): return ("b", bool(v))
def INTS(v): return ("ints", [int(x) for x in v])
def FLOATS(v): return ("floats", [float(x) for x in v])
def LONGS(v): return ("longs", [int(x) for x in v])
def LONG(v): return ("l", int(v))
def STRINGS(v): return ("strings", [str(x) for x in v])
def BOOLS(v): return ("bools", [bool(x) for x in v])
def FLOAT64(v): return ("float64", float(v))
def FLOAT64S(v): return ("float64s", [float(x) for x in v])
def BLOCK(v): return ("block_idx", int(v))



def proto_dtype(name) -> int:
    """framework.proto dtype number of a PIR dtype attribute ("float32"; "Undefined(...)" -> -1)."""
    name = str(name)
    if name.startswith("Undefined"):
        return -1
    if name not in PROTO_DTYPE:
        raise TranslationError(f"dtype {name} has no legacy form")
    return PROTO_DTYPE[name]


class Builder:
    def __init__(self, program: PirProgram):
        framework_pb2 = framework_proto()

        self.pb = framework_pb2
        self.pir = program
        self.desc = framework_pb2.ProgramDesc()
        self.block = self.desc.blocks.add()       # the block ops are emitted into now
        self.block.idx = 0
        self.block.parent_idx = -1
        self.block.forward_block_idx = -1
        self.names: Dict[int, str] = {}
        self.const_names: Dict[tuple, str] = {}         # (value id, block idx) -> materialized constant
        self.failed: set = set()                        # results of ops that could not be translated
        self.fetches: List[PirOp] = []
        self.feed_col = 0
        self.on_op = lambda op, route=None, problem=None, legacy=(): None   # translate() records each op here
        self.values: Dict[int, Value] = {}
        self.consts: Dict[int, object] = {}
        self.vectors: Dict[int, List[int]] = {}        # builtin.combine result -> member value ids
        self.split_results: Dict[int, List[str]] = {}  # split op's vector result -> legacy var names
        self.declared: set = set()
        self._counter = 0
        for vid, param in program.params.items():
            self.names[vid] = param.name
            self.values[vid] = param.value
            self.declare(param.name, param.value.dtype, param.value.shape, persistable=param.persistable)

    # ------------------------------------------------------------------ variables
    def declare(self, name: str, dtype: Optional[str], shape: Optional[List[int]], persistable=False,
                kind: str = "DENSE_TENSOR") -> str:
        if name in self.declared:
            return name
        var = self.block.vars.add()
        var.name = name
        var.type.type = _var_type_number(self.pb, kind)
        if kind == "DENSE_TENSOR":
            tensor = var.type.dense_tensor.tensor
            tensor.data_type = PROTO_DTYPE.get(dtype or "float32", 5)
            tensor.dims.extend(shape or [])
        var.persistable = persistable
        self.declared.add(name)
        return name

    def sub_block(self):
        """A new block nested in the current one; use as ``with b.sub_block() as block:``."""
        return _SubBlock(self)

    def fresh(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}_{self._counter}.tmp"

    def name_of(self, vid: int) -> str:
        """The legacy variable holding value ``vid`` (materializing a constant if needed)."""
        if vid in self.names:
            return self.names[vid]
        if vid in self.failed:
            raise UpstreamFailed(f"value %{vid} comes from an op that was not translated")
        if vid in self.consts:
            # materialized where it is used: a constant made inside a sub-block is not visible outside it
            key = (vid, self.block.idx)
            if key not in self.const_names:
                self.const_names[key] = self._materialize(vid)
            return self.const_names[key]
        raise TranslationError(f"value %{vid} is used before it is defined")

    def output(self, op: PirOp, k: int = 0, hint: Optional[str] = None) -> str:
        value = op.outputs[k]
        name = self.fresh(hint or op.name)
        self.names[value.id] = name
        self.values[value.id] = value
        return self.declare(name, value.dtype, value.shape)

    def alias(self, vid: int, name: str, value: Optional[Value] = None) -> None:
        self.names[vid] = name
        if value is not None:
            self.values[vid] = value

    def const(self, op: PirOp, k: int, default=None):
        """A constant operand (from full / full_int_array), or ``default`` when absent."""
        vid = op.inputs[k] if k < len(op.inputs) else 0
        if vid == 0:
            return default
        if vid not in self.consts:
            raise TranslationError(f"operand {k} of {op.full_name} must be a constant for the legacy op "
                                   "(it is computed at run time)")
        return self.consts[vid]

    def is_const(self, vid: int) -> bool:
        return vid in self.consts

    def vector_output(self, op: PirOp, k: int = 0) -> List[str]:
        """Names for the members of a vector result (builtin.split later names each member)."""
        value = op.outputs[k]
        names = []
        for j, element in enumerate(value.elements or []):
            name = self.fresh(f"{op.name}_{j}")
            self.declare(name, element.dtype, element.shape)
            names.append(name)
        self.split_results[value.id] = names
        return names

    def cast(self, vid: int, dtype: str, hint: str = "cast") -> str:
        """The legacy variable of value ``vid`` in ``dtype`` (a cast is emitted only if it has another dtype)."""
        name = self.name_of(vid)
        source = self.values.get(vid)
        if source is None or not source.dtype or source.dtype == dtype:
            return name
        out = self.declare(self.fresh(hint), dtype, source.shape)
        self.emit("cast", {"X": [name]}, {"Out": [out]},
                  {"in_dtype": INT(PROTO_DTYPE[source.dtype]), "out_dtype": INT(PROTO_DTYPE[dtype])})
        return out

    def has_input(self, op: PirOp, k: int) -> bool:
        return k < len(op.inputs) and op.inputs[k] != 0

    def _materialize(self, vid: int) -> str:
        info = self.values.get(vid)
        return self.constant(self.consts[vid], info.dtype if info and info.dtype else "float32",
                             info.shape if info else None)

    def constant(self, value, dtype: str, shape: Optional[List[int]] = None) -> str:
        """Emit a constant tensor (fill_constant / assign_value) into the current block; returns its name."""
        if (not isinstance(value, list) and dtype in ("int32", "int64") and shape and float(np.float32(value)) != value
                and int(np.prod(shape)) <= 4096):
            # fill_constant's float "value" (read by Lite and paddle2onnx; Paddle reads str_value) cannot hold it:
            # PIR's slice-to-the-end bound 2147483647 would become 2^31 and overflow int32
            return self.constant([int(value)] * int(np.prod(shape)), dtype, shape)
        name = self.fresh("const")
        if isinstance(value, list):
            if not shape or int(np.prod(shape)) != len(value):
                shape = [len(value)]
            attrs = {"shape": INTS(shape), "dtype": INT(PROTO_DTYPE[dtype])}
            if dtype in ("int32", "int64"):
                attrs["int64_values" if dtype == "int64" else "int32_values"] = (
                    LONGS(value) if dtype == "int64" else INTS(value))
            elif dtype == "bool":
                attrs["bool_values"] = INTS([int(bool(v)) for v in value])
            else:
                attrs["fp32_values"] = FLOATS(value)
            self.declare(name, dtype, shape)
            self.emit("assign_value", {}, {"Out": [name]}, attrs)
        else:
            # a 0-D value stays 0-D (stack/concat with 0-D run-time values need equal ranks); unknown: [1]
            shape = [1] if shape is None else list(shape)
            self.declare(name, dtype, shape)
            self.emit("fill_constant", {}, {"Out": [name]},
                      {"shape": LONGS(shape), "dtype": INT(PROTO_DTYPE[dtype]), "value": FLOAT(value),
                       "str_value": STRING(repr(float(value)) if dtype.startswith("float") else str(int(value))),
                       "force_cpu": BOOL(False), "place_type": INT(-1)})
        return name

    # ------------------------------------------------------------------ ops
    def emit(self, op_type: str, inputs: Dict[str, List[str]], outputs: Dict[str, List[str]], attrs: dict):
        op = self.block.ops.add()
        op.type = op_type
        for slot, names in inputs.items():
            entry = op.inputs.add()
            entry.parameter = slot
            entry.arguments.extend(names)
        for slot, names in outputs.items():
            entry = op.outputs.add()
            entry.parameter = slot
            entry.arguments.extend(names)
        # every op of a legacy program Paddle writes carries op_role (0: forward); Paddle's PTQ passes read it
        # from each op they quantize and raise NotFound without it
        attrs = {**attrs, "op_role": attrs.get("op_role", INT(0))}
        for name, (field, value) in attrs.items():
            attr = op.attrs.add()
            attr.name = name
            set_attr(attr, FIELD_KINDS[field], value)
        return op


_VAR_TYPES: Dict[str, int] = {}


def _var_type_number(pb, kind: str) -> int:
    if kind not in _VAR_TYPES:
        _VAR_TYPES[kind] = getattr(pb.VarType, kind)
    return _VAR_TYPES[kind]


class _SubBlock:
    def __init__(self, builder: Builder):
        self.builder = builder

    def __enter__(self):
        b = self.builder
        self.parent = b.block
        block = b.desc.blocks.add()
        block.idx = len(b.desc.blocks) - 1
        block.parent_idx = self.parent.idx
        block.forward_block_idx = -1
        b.block = block
        return block

    def __exit__(self, *exc):
        self.builder.block = self.parent
        return False
