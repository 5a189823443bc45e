"""Building a legacy ProgramDesc while walking a PIR program.

``Builder`` owns the name of every PIR value in the legacy program, the
constants (``full`` / ``full_int_array`` results, which legacy ops take as
attributes), vectors (``builtin.combine``) and the protobuf being written.
Op translators (ops.py) only ask it for names, constants and to emit ops.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from wherry.convert.pir.reader import PirOp, PirProgram, Value
from wherry.runtimes.paddle_model import PROTO_DTYPES

# numpy dtype name -> framework.proto VarType.Type number
PROTO_DTYPE = {name: number for number, name in PROTO_DTYPES.items()}


class TranslationError(Exception):
    """An op cannot be expressed in the legacy program (raised per op, collected by translate())."""


# Typed attribute constructors: legacy ops read attributes with a fixed type.
def INT(v): return ("i", int(v))            # noqa: E302,E704
def FLOAT(v): return ("f", float(v))        # noqa: E302,E704
def STRING(v): return ("s", str(v))         # noqa: E302,E704
def BOOL(v): return ("b", bool(v))          # noqa: E302,E704
def INTS(v): return ("ints", [int(x) for x in v])          # noqa: E302,E704
def FLOATS(v): return ("floats", [float(x) for x in v])    # noqa: E302,E704
def LONGS(v): return ("longs", [int(x) for x in v])        # noqa: E302,E704
def LONG(v): return ("l", int(v))           # noqa: E302,E704


class Builder:
    def __init__(self, program: PirProgram):
        from paddle.base.proto import framework_pb2

        self.pb = framework_pb2
        self.pir = program
        self.desc = framework_pb2.ProgramDesc()
        self.block = self.desc.blocks.add()
        self.block.idx = 0
        self.block.parent_idx = -1
        self.names: Dict[int, str] = {}
        self.values: Dict[int, Value] = {}
        self.consts: Dict[int, object] = {}
        self.vectors: Dict[int, List[int]] = {}        # builtin.combine result -> member value ids
        self.split_results: Dict[int, List[str]] = {}  # split op's vector result -> legacy var names
        self.declared: set = set()
        self._counter = 0
        for vid, param in program.params.items():
            self.names[vid] = param.name
            self.values[vid] = param.value
            self.declare(param.name, param.value.dtype, param.value.shape, persistable=True)

    # ------------------------------------------------------------------ variables
    def declare(self, name: str, dtype: Optional[str], shape: Optional[List[int]], persistable=False,
                kind: str = "DENSE_TENSOR") -> str:
        if name in self.declared:
            return name
        var = self.block.vars.add()
        var.name = name
        var.type.type = getattr(self.pb.VarType, kind)
        if kind == "DENSE_TENSOR":
            tensor = var.type.dense_tensor.tensor
            tensor.data_type = PROTO_DTYPE.get(dtype or "float32", 5)
            tensor.dims.extend(shape or [])
        var.persistable = persistable
        self.declared.add(name)
        return name

    def fresh(self, hint: str) -> str:
        self._counter += 1
        return f"{hint}_{self._counter}.tmp"

    def name_of(self, vid: int) -> str:
        """The legacy variable holding value ``vid`` (materializing a constant if needed)."""
        if vid in self.names:
            return self.names[vid]
        if vid in self.consts:
            return self._materialize(vid)
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

    def has_input(self, op: PirOp, k: int) -> bool:
        return k < len(op.inputs) and op.inputs[k] != 0

    def _materialize(self, vid: int) -> str:
        value = self.consts[vid]
        info = self.values.get(vid)
        dtype = info.dtype if info and info.dtype else "float32"
        name = self.fresh("const")
        if isinstance(value, list):
            shape = [len(value)]
            attrs = {"shape": INTS(shape), "dtype": INT(PROTO_DTYPE[dtype])}
            if dtype in ("int32", "int64"):
                attrs["int64_values" if dtype == "int64" else "int32_values"] = (
                    LONGS(value) if dtype == "int64" else INTS(value))
            else:
                attrs["fp32_values"] = FLOATS(value)
            self.declare(name, dtype, shape)
            self.emit("assign_value", {}, {"Out": [name]}, attrs)
        else:
            shape = info.shape if info and info.shape else [1]
            self.declare(name, dtype, shape)
            self.emit("fill_constant", {}, {"Out": [name]},
                      {"shape": LONGS(shape), "dtype": INT(PROTO_DTYPE[dtype]), "value": FLOAT(value),
                       "str_value": STRING(repr(float(value)) if dtype.startswith("float") else str(int(value))),
                       "force_cpu": BOOL(False), "place_type": INT(-1)})
        self.names[vid] = name
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
        kinds = {"i": "INT", "f": "FLOAT", "s": "STRING", "b": "BOOLEAN", "ints": "INTS", "floats": "FLOATS",
                 "longs": "LONGS", "l": "LONG"}
        for name, (kind, value) in attrs.items():
            attr = op.attrs.add()
            attr.name = name
            attr.type = getattr(self.pb.AttrType, kinds[kind])
            if kind in ("ints", "floats", "longs"):
                getattr(attr, kind).extend(value)
            else:
                setattr(attr, kind, value)
        return op
