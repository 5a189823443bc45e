"""Which tensors a debug round taps: all of them, or, for a large graph, a bisection.

Moving and comparing every intermediate tensor dominates a debug run of a large graph (a DenseNet-121 or a
640×640 detector holds hundreds of full-size feature maps per side). A bisection taps the outputs of a few
evenly spaced *checkpoint* ops first; when one leaves tolerance, the next round taps densely only the ops
between the last tapped op before it and it (their outputs and their inputs), and so on backwards until the
first diverging op's inputs are tapped themselves. A healthy artifact costs one round of a few tensors.

What it trades away: a value that leaves tolerance between two checkpoints and comes back within it before
the next one (a branch a later op masks) is not seen; ``taps="all"`` compares every op.
"""
from __future__ import annotations

import math
from typing import List, Optional, Set

from . import mapping
from .program import OpRecord, Program

ALL, AUTO = "all", "auto"
MODES = (AUTO, ALL)
# A graph with at most this many compared ops is tapped whole (one round is then cheaper than two);
# a larger one is bisected with about this many checkpoints.
BISECT_ABOVE = 48
CHECKPOINTS = 24


def compared_ops(program: Program) -> List[OpRecord]:
    """The ops whose outputs a debug run compares, in execution order."""
    return [op for op in program.ops if op.data_outputs(program.tensors)]


def every_tensor(program: Program) -> List[str]:
    return list(dict.fromkeys(n for op in program.ops for n in op.data_outputs(program.tensors)))


def bisects(program: Program, mode: str) -> bool:
    return mode == AUTO and len(compared_ops(program)) > BISECT_ABOVE


def checkpoints(program: Program, count: int = CHECKPOINTS, matched: Optional[Set[str]] = None) -> List[str]:
    """The outputs of about ``count`` evenly spaced ops (the last op always among them); ``matched``: only ops
    whose outputs the artifact has counterparts of (a checkpoint it lacks would tell nothing)."""
    ops = [op for op in compared_ops(program)
           if matched is None or all(n in matched for n in op.data_outputs(program.tensors))] or compared_ops(program)
    stride = max(1, math.ceil(len(ops) / count))
    chosen = ops[stride - 1::stride]
    if ops and (not chosen or chosen[-1] is not ops[-1]):
        chosen.append(ops[-1])
    return list(dict.fromkeys(n for op in chosen for n in op.data_outputs(program.tensors)))


def resolved(program: Program, op_index: int, judged: Set[str]) -> bool:
    """Whether the inputs of op ``op_index`` were compared: then a first divergence there is final."""
    op = next(o for o in program.ops if o.index == op_index)
    return all(n in judged or n in program.feeds for n in op.data_inputs(program.tensors))


def window(program: Program, op_index: int, judged: Set[str]) -> List[str]:
    """The tensors to tap next when op ``op_index`` is the first compared op that diverges: the outputs and
    inputs of every op after the last op already compared before it, up to it."""
    ops = compared_ops(program)
    end = next(i for i, op in enumerate(ops) if op.index == op_index)
    start = end
    while start > 0 and not all(n in judged for n in ops[start - 1].data_outputs(program.tensors)):
        start -= 1
    names = []
    for op in ops[start:end + 1]:
        names += op.data_outputs(program.tensors) + op.data_inputs(program.tensors)
    return [n for n in dict.fromkeys(names) if n not in program.feeds]


# Paddle ops whose ONNX translation may carry the bias add that follows them under their own output's name
_BIASED = ("conv2d", "depthwise_conv2d", "conv2d_transpose", "conv3d", "matmul", "matmul_v2", "mul")


def with_fused_twins(program: Program, names: List[str], used: Optional[dict] = None) -> List[str]:
    """``names`` and, for a conv or matmul output among them, the outputs of the ops that consume it: where
    paddle2onnx writes a conv and its bias add under the conv's name, the reference needs the add's output
    to recognise it (``locate``)."""
    used = mapping.consumers(program) if used is None else used
    made = program.producer()
    extra = [t for n in names if n in made and made[n].type in _BIASED
             for t in mapping.downstream(program, n, depth=1, used=used)]
    return list(dict.fromkeys(list(names) + extra))
