"""Reading a Paddle 3 PIR program (``model.json``) into plain Python objects.

The JSON is PIR's serialized form: ops carry ``"#": "<dialect>.<name>"``
(``0`` = builtin, ``1`` = pd_op, ``2`` = cf; ``p`` = a parameter), operands as
value ids (``{"%": id}``; id 0 is "no value"), results with their types (``TT``),
attributes as typed nodes (``{"#": "0.a_i32", "D": 3}``) and, for control flow,
``regions`` of blocks whose arguments have negative ids.

The JSON names operands only by position; the names Paddle gives them (its op
yaml info, ``schema.pir_signatures``) are attached to each op here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from wherry.runtimes.paddle_model import load_pir_ops, pir_dtype

DIALECTS = {"0": "builtin", "1": "pd_op", "2": "cf"}


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
    blocks: List["PirBlock"] = field(default_factory=list)   # the blocks of its regions, in order
    input_names: Tuple[str, ...] = ()                        # Paddle's operand names (empty: unknown)
    attr_names: Tuple[str, ...] = ()
    output_names: Tuple[str, ...] = ()

    @property
    def full_name(self) -> str:
        return f"{self.dialect}.{self.name}"

    @property
    def has_regions(self) -> bool:
        return bool(self.blocks)

    def walk(self):
        """This op and every op nested in its blocks."""
        yield self
        for block in self.blocks:
            for op in block.ops:
                yield from op.walk()


@dataclass
class PirBlock:
    args: List[Value]
    ops: List[PirOp]


@dataclass
class Param:
    name: str
    value: Value
    persistable: bool = True    # False: a run-time buffer (rnn dropout state), not in the parameter file


@dataclass
class PirProgram:
    ops: List[PirOp]
    params: Dict[int, Param] = field(default_factory=dict)

    def walk(self):
        """Every op, nested ones included."""
        for op in self.ops:
            yield from op.walk()


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


def _block(raw_block, program: PirProgram, counter: List[int]) -> PirBlock:
    args = [_type(a.get("TT", {}), int(a.get("#", 0))) for a in raw_block.get("args", [])]
    return PirBlock(args, _ops(raw_block.get("ops", []), program, counter))


def _ops(raw_ops, program: PirProgram, counter: List[int]) -> List[PirOp]:
    ops = []
    for raw in raw_ops:
        tag = raw.get("#", "")
        if tag == "p":  # parameter: A = [?, ?, ?, name], O = its value
            out = _outputs(raw.get("O"))[0]
            flags = raw.get("OA") or [1]
            program.params[out.id] = Param(str(raw["A"][3]), out, bool(flags[0]))
            continue
        dialect, _, name = tag.partition(".")
        attrs = {}
        for item in raw.get("A", []):
            if isinstance(item, dict) and "N" in item:
                attrs[item["N"]] = _attr(item.get("AT"))
        attrs.pop("struct_name", None)
        inputs = [int(i.get("%", 0)) if isinstance(i, dict) else 0 for i in raw.get("I", [])]
        index = counter[0]
        counter[0] += 1
        blocks = [_block(b, program, counter) for region in raw.get("regions", []) for b in region.get("blocks", [])]
        ops.append(PirOp(index, DIALECTS.get(dialect, dialect), name, attrs, inputs,
                         _outputs(raw.get("O", [])), blocks))
    return ops


def read_program(json_path, with_names: bool = True) -> PirProgram:
    """The program in ``json_path``; ``with_names`` asks Paddle for operand/attribute/result names."""
    program = PirProgram([])
    program.ops = _ops(load_pir_ops(json_path), program, [0])
    if with_names:
        from .schema import pir_signatures

        signatures = pir_signatures(json_path, {op.full_name for op in program.walk()})
        for op in program.walk():
            sig = signatures.get(op.full_name)
            if sig is not None:
                op.input_names, op.attr_names, op.output_names = sig.inputs, sig.attrs, sig.outputs
    return program
