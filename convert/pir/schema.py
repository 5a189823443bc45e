"""Op definitions as the installed Paddle wheel states them, on both sides of the translation.

* Legacy side: the op proto registry (``core.get_all_op_protos``) gives every legacy op's input and
  output slots (duplicable, dispensable, extra) and its attributes with their types, and
  ``core.get_op_attrs_default_value`` the defaults Paddle fills in when an attribute is absent.
* PIR side: ``model.json`` names operands only by position. Paddle itself, deserializing the same
  file, knows each op's operand, attribute and result names (its op yaml info); we read them once
  per op kind.

Nothing here is typed by hand: a newer wheel brings its own definitions.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Dict, Optional, Tuple

from wherry.runtimes.paddle_model import framework_proto

from .. import paddle_registry
from ..paddle_mode import import_paddle

# framework.proto AttrType numbers
ATTR_INT, ATTR_FLOAT, ATTR_STRING, ATTR_INTS, ATTR_FLOATS, ATTR_STRINGS = 0, 1, 2, 3, 4, 5
ATTR_BOOLEAN, ATTR_BOOLEANS, ATTR_BLOCK, ATTR_LONG, ATTR_BLOCKS, ATTR_LONGS = 6, 7, 8, 9, 10, 11
ATTR_FLOAT64S, ATTR_VAR, ATTR_VARS, ATTR_FLOAT64, ATTR_SCALAR, ATTR_SCALARS = 12, 13, 14, 15, 16, 17


@dataclass(frozen=True)
class Slot:
    name: str
    duplicable: bool = False
    dispensable: bool = False
    extra: bool = False


@dataclass(frozen=True)
class LegacyOp:
    type: str
    inputs: Tuple[Slot, ...]
    outputs: Tuple[Slot, ...]
    attrs: Dict[str, int]          # name -> AttrType number (extra attributes left out)
    defaults: Dict[str, object]


@dataclass(frozen=True)
class PirSignature:
    inputs: Tuple[str, ...]
    attrs: Tuple[str, ...]
    outputs: Tuple[str, ...]


@lru_cache(maxsize=1)
def legacy_ops() -> Dict[str, LegacyOp]:
    """Every legacy op the installed Paddle registers, by type."""
    import_paddle()
    from paddle.base import core

    framework_pb2 = framework_proto()

    catalog = {}
    for raw in core.get_all_op_protos():
        proto = framework_pb2.OpProto.FromString(raw)
        catalog[proto.type] = LegacyOp(
            proto.type,
            tuple(Slot(s.name, s.duplicable, s.dispensable, s.extra) for s in proto.inputs),
            tuple(Slot(s.name, s.duplicable, s.dispensable, s.extra or s.intermediate) for s in proto.outputs),
            {a.name: a.type for a in proto.attrs if not a.extra},
            {})
    return catalog


def legacy_defaults(op_type: str) -> Dict[str, object]:
    entry = paddle_registry.op(op_type)
    return dict(entry["defaults"] or {}) if entry is not None else {}


def legacy_op(op_type: str) -> Optional[LegacyOp]:
    return legacy_ops().get(op_type)


def tensor_input(op_type: str, attr: str) -> Optional[Slot]:
    """The input slot through which legacy ``op_type`` takes attribute ``attr`` computed at run time.

    Legacy ops name that twin after the attribute: ``shape`` -> ``Shape`` (reshape2, expand_v2) or
    ``ShapeTensor`` (fill_constant), ``starts`` -> ``StartsTensor`` (slice), ``repeat_times`` ->
    ``RepeatTimes`` (tile), ``value`` -> ``ValueTensor``, ``depth`` -> ``depth_tensor``. Only a
    dispensable slot holding one tensor qualifies (the duplicable ``*TensorList`` twins hold one
    tensor per element). None: the legacy op has no run-time form of the attribute."""
    proto = legacy_op(op_type)
    if proto is None or attr not in proto.attrs:
        return None
    key = attr.replace("_", "").lower()
    for slot in proto.inputs:
        if slot.dispensable and not slot.duplicable and slot.name.replace("_", "").lower() in (key, key + "tensor"):
            return slot
    return None


def tensor_list_input(op_type: str, attr: str) -> Optional[Slot]:
    """The input slot through which legacy ``op_type`` takes list attribute ``attr`` as one 1-element tensor
    per entry (``ShapeTensor`` of reshape2, ``ShapeTensorList`` of fill_constant, ``StartsTensorList`` of
    slice, ``expand_shapes_tensor`` of expand_v2, ``repeat_times_tensor`` of tile): a dispensable,
    duplicable slot named after the attribute and ending in Tensor or TensorList."""
    proto = legacy_op(op_type)
    if proto is None or attr not in proto.attrs:
        return None
    key = attr.replace("_", "").lower()
    for slot in proto.inputs:
        name = slot.name.replace("_", "").lower()
        if slot.dispensable and slot.duplicable and key in name and name.endswith(("tensor", "tensorlist")):
            return slot
    return None


_SIGNATURES: Dict[str, Optional[PirSignature]] = {}   # op kind -> names (None: Paddle has no yaml info)


def pir_signatures(json_path, kinds=None) -> Dict[str, PirSignature]:
    """Operand / attribute / result names of every op kind in a PIR program, as Paddle defines them.

    Ops without yaml info (builtin.*, cf.*, pd_op.if / while) are absent: the translator treats them
    structurally. Names depend only on the op kind, so they are kept for the process: when every kind
    in ``kinds`` is known, the program is not deserialized again."""
    if kinds is None or any(k not in _SIGNATURES for k in kinds):
        _SIGNATURES.update(_read_signatures(json_path))
        for kind in kinds or ():
            _SIGNATURES.setdefault(kind, None)
    return {k: v for k, v in _SIGNATURES.items() if v is not None}


def _read_signatures(json_path) -> Dict[str, Optional[PirSignature]]:
    from ..paddle_mode import require_pir_reader

    paddle = import_paddle()
    from paddle.base import core

    require_pir_reader(paddle)
    program = paddle.pir.Program()  # deserializing needs no static mode: the process's mode is left alone
    core.deserialize_pir_program(str(Path(json_path)), program)
    signatures: Dict[str, Optional[PirSignature]] = {}

    def walk(block):
        for op in block.ops:
            name = op.name()
            if name not in signatures:
                try:
                    signatures[name] = PirSignature(tuple(op.get_input_names()), tuple(op.get_attr_names()),
                                                    tuple(op.get_output_names()))
                except ValueError:  # no OpYamlInfoInterface
                    signatures[name] = None
            for sub in op.blocks():
                walk(sub)

    walk(program.global_block())
    return signatures
