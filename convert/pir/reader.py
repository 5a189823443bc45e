"""Reading a Paddle 3 PIR program (``model.json``) into plain Python objects.

The JSON is PIR's serialized form: ops carry ``"#": "<dialect>.<name>"``
(``0`` = builtin, ``1`` = pd_op; ``p`` = a parameter), operands as value ids
(``{"%": id}``; id 0 is "no value"), results with their types (``TT``) and
attributes as typed nodes (``{"#": "0.a_i32", "D": 3}``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from wherry.runtimes.paddle_model import load_pir_ops, pir_dtype

DIALECTS = {"0": "builtin", "1": "pd_op"}


@dataclass
class Value:
    id: int
    dtype: Optional[str]                      # None for vectors (builtin.combine results)
    shape: Optional[List[int]]                # -1 for dynamic dims
    elements: Optional[List["Value"]] = None  # element types of a vector value


@dataclass
class PirOp:
    index: int
    dialect: str
    name: str
    attrs: Dict[str, Any]
    inputs: List[int]                         # value ids, 0 = absent optional operand
    outputs: List[Value]
    has_regions: bool = False

    @property
    def full_name(self) -> str:
        return f"{self.dialect}.{self.name}"


@dataclass
class Param:
    name: str
    value: Value


@dataclass
class PirProgram:
    ops: List[PirOp]
    params: Dict[int, Param] = field(default_factory=dict)


def _attr(node):
    """Decode a typed attribute node into a Python value."""
    if not isinstance(node, dict) or "#" not in node:
        return node
    kind, data = node["#"].split(".", 1)[-1], node.get("D")
    if kind == "a_array":
        return [_attr(item) for item in data]
    if kind in ("a_place",):
        return None
    if kind == "a_dtype":
        return str(data)
    return data


def _type(node, vid=-1) -> Value:
    kind = node.get("#", "").split(".", 1)[-1]
    data = node.get("D")
    if kind == "t_vec":
        elements = [_type(item) for item in data]
        return Value(vid, None, None, elements)
    if kind == "t_dtensor":
        return Value(vid, pir_dtype(data[0]), [int(d) for d in data[1]])
    return Value(vid, None, None)


def _outputs(raw) -> List[Value]:
    items = raw if isinstance(raw, list) else [raw]
    values = []
    for item in items:
        if not item:
            continue
        value = _type(item.get("TT", {}), int(item.get("%", 0)))
        values.append(value)
    return values


def read_program(json_path) -> PirProgram:
    raw_ops = load_pir_ops(json_path)
    program = PirProgram([])
    for index, raw in enumerate(raw_ops):
        tag = raw.get("#", "")
        if tag == "p":  # parameter: A = [?, ?, ?, name], O = its value
            out = _outputs(raw.get("O"))[0]
            program.params[out.id] = Param(str(raw["A"][3]), out)
            continue
        dialect, _, name = tag.partition(".")
        attrs = {}
        for item in raw.get("A", []):
            if isinstance(item, dict) and "N" in item:
                attrs[item["N"]] = _attr(item.get("AT"))
        attrs.pop("struct_name", None)
        inputs = [int(i.get("%", 0)) if isinstance(i, dict) else 0 for i in raw.get("I", [])]
        program.ops.append(PirOp(index, DIALECTS.get(dialect, dialect), name, attrs, inputs,
                                 _outputs(raw.get("O", [])), bool(raw.get("regions"))))
    return program
