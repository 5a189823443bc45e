"""Which artifact tensor is which Paddle variable.

paddle2onnx names the last ONNX node of most Paddle ops after the op's output variable, and Paddle Lite
keeps the program's variable names, so most tensors match by name. Where paddle2onnx invents a name
(``Clip.1`` for a relu6), the tensor is matched by structure: a Paddle op and the ONNX node that wrote
its (name-matched) output take their data inputs in the same order, so an unmatched Paddle input and the
ONNX node's input at the same position are the same tensor. Mostly: a legacy program stores an op's input
slots in alphabetical order (``range``: End, Start, Step; ONNX ``Range``: start, limit, delta), so
``locate`` drops a position match its own op's output contradicts. A name can also be borrowed: paddle2onnx
writes a conv with its bias add under the conv's output name; that tensor is then equal to Paddle's
output of the add a few ops later, which ``locate`` checks by value. In a quantized (QDQ) graph a tensor
is compared after its DequantizeLinear: that is what the next layer consumes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .program import Program


@dataclass
class TensorMap:
    pairs: Dict[str, str] = field(default_factory=dict)      # Paddle variable -> artifact tensor
    how: Dict[str, str] = field(default_factory=dict)        # Paddle variable -> "name" | "position" | "fused"
    unmatched: List[str] = field(default_factory=list)       # Paddle tensors with no artifact counterpart
    # a tensor matched by position -> the (matched) output of the op through which it was: its evidence
    via: Dict[str, str] = field(default_factory=dict)

    def add(self, paddle_name: str, artifact_name: str, how: str) -> None:
        self.pairs[paddle_name] = artifact_name
        self.how[paddle_name] = how


def by_name(program: Program, artifact_names) -> TensorMap:
    result = TensorMap()
    for name in program.tensors:
        if name in artifact_names:
            result.add(name, name, "name")
    return result


def onnx_map(program: Program, artifact_names, graph) -> TensorMap:
    """Name matches, then structural matches through the ONNX node that produced each matched output."""
    result = by_name(program, artifact_names)
    for name in list(result.pairs):
        # A quantized (QDQ) graph: the value the next layer really consumes is the dequantized one (ONNX
        # Runtime's quantizer also folds a ReLU into the quantization range, leaving the float tensor raw).
        dequantized = f"{name}_DequantizeLinear_Output"
        if dequantized in artifact_names:
            result.add(name, dequantized, "name")
    constants = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant"
                                                        for o in n.output}
    producer = {o: n for n in graph.node for o in n.output}

    def real_producer(name):
        """The node that computed a tensor, looking through a quantized graph's Quantize/Dequantize pair."""
        node = producer.get(name)
        while node is not None and node.op_type in QDQ:
            node = producer.get(node.input[0])
        return node
    taken = set(result.pairs.values())
    changed = True
    while changed:
        changed = False
        for op in program.ops:
            made = [n for n in op.data_outputs(program.tensors) if n in result.pairs]
            if not made:
                continue
            node = real_producer(result.pairs[made[0]])
            if node is None or not same_kind(op.type, node.op_type):
                continue  # a node that fused several Paddle ops: its inputs are not this op's inputs
            paddle_inputs = op.data_inputs(program.tensors)
            onnx_inputs = [i for i in node.input if i and i not in constants and not i.endswith(_QUANTIZED)
                           and i in artifact_names | set(program.feeds)]
            if len(paddle_inputs) != len(onnx_inputs):
                continue
            for p_name, o_name in zip(paddle_inputs, onnx_inputs):
                if p_name not in result.pairs and o_name not in taken:
                    result.add(p_name, o_name, "position")
                    result.via[p_name] = made[0]
                    taken.add(o_name)
                    changed = True
    result.unmatched = [n for n in program.tensors if n not in result.pairs and n not in program.feeds]
    return result


QDQ = ("QuantizeLinear", "DequantizeLinear")
_QUANTIZED = "_QuantizeLinear_Output"   # integer tensors of a QDQ graph: never a Paddle tensor's twin
# Paddle op -> ONNX op types that paddle2onnx writes for it, where the names alone do not say so
_ALIASES = {"relu6": ("clip",), "matmul": ("gemm",), "matmul_v2": ("gemm",), "mul": ("gemm", "matmul"),
            "flatten_contiguous_range": ("reshape", "flatten"), "scale": ("mul", "add"),
            "lookup_table_v2": ("gather",), "pad3d": ("pad",)}


def same_kind(paddle_type: str, onnx_type: str) -> bool:
    """Whether an ONNX node plausibly is the translation of one Paddle op (conv2d/Conv, pool2d/MaxPool)."""
    core = paddle_type.replace("elementwise_", "").replace("_v2", "").replace("2d", "").replace("3d", "")
    core = "".join(c for c in core.lower() if c.isalpha())
    onnx = onnx_type.lower()
    return core in onnx or onnx in core or onnx in _ALIASES.get(paddle_type, ())


def consumers(program: Program) -> Dict[str, list]:
    used: Dict[str, list] = {}
    for op in program.ops:
        for name in op.data_inputs(program.tensors):
            used.setdefault(name, []).append(op)
    return used


def downstream(program: Program, name: str, depth: int = 3, used: Optional[Dict[str, list]] = None) -> List[str]:
    """Tensors computed from ``name`` within ``depth`` ops (candidates for a fused twin); ``used`` is
    ``consumers(program)``, computed once by a caller that asks for many names."""
    used = consumers(program) if used is None else used
    frontier, seen, found = [name], {name}, []
    for _ in range(depth):
        nxt = []
        for tensor in frontier:
            for op in used.get(tensor, []):
                for out in op.data_outputs(program.tensors):
                    if out not in seen:
                        seen.add(out)
                        found.append(out)
                        nxt.append(out)
        frontier = nxt
    return found


