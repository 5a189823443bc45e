"""Control flow: ``pd_op.if`` / ``pd_op.while`` and their blocks -> legacy sub-blocks.

The legacy forms are the ones Paddle 2.x dy2static wrote, which Paddle Inference, Paddle Lite and
paddle2onnx read:

* ``if``: one ``conditional_block`` per branch (the false one on ``logical_not(cond)``), each
  writing its yielded values into its own variables, then ``select_input`` per result choosing by
  the condition cast to int32 (``X = [false, true]``).
* ``while``: the loop-carried values live in variables of the enclosing block; the body block
  reads them, and at its end assigns the yielded values back to them and the new condition to the
  condition variable. Block arguments of the PIR body are those variables.

SSA values from PIR keep their names inside sub-blocks; constants are made in the block that uses
them (``Builder.name_of``). Each legacy control-flow op lists as inputs every variable of enclosing
blocks its sub-block reads.
"""
from __future__ import annotations

from typing import List

from .builder import BLOCK, BOOL, INT, PROTO_DTYPE, Builder, TranslationError
from .ops import translates
from .reader import PirBlock, PirOp


def _body(block: PirBlock):
    """The ops of a block and the operands of its closing cf.yield."""
    if not block.ops or block.ops[-1].full_name != "cf.yield":
        raise TranslationError("a control-flow block that does not end in cf.yield")
    return block.ops[:-1], block.ops[-1].inputs


def _translate_body(b: Builder, ops: List[PirOp]) -> None:
    from . import translate_block  # the package-level walker (it imports this module)

    translate_block(b, ops)


def _external_reads(block_desc) -> List[str]:
    """Variables a sub-block reads but does not declare: they come from enclosing blocks."""
    local = {v.name for v in block_desc.vars}
    reads = []
    for op in block_desc.ops:
        for slot in op.inputs:
            for name in slot.arguments:
                if name not in local and name not in reads:
                    reads.append(name)
    return reads


def _assign(b: Builder, source: str, target: str) -> None:
    if source != target:
        b.emit("assign", {"X": [source]}, {"Out": [target]}, {})


@translates("pd_op.if")
def if_(b: Builder, op: PirOp):
    if len(op.blocks) != 2:
        raise TranslationError(f"an if with {len(op.blocks)} blocks (expected a true and a false block)")
    cond = b.name_of(op.inputs[0])
    not_cond = b.declare(b.fresh("if_not"), "bool", b.values[op.inputs[0]].shape if op.inputs[0] in b.values
                         else [1])
    b.emit("logical_not", {"X": [cond]}, {"Out": [not_cond]}, {})
    branches = []
    for block, condition, hint in ((op.blocks[0], cond, "if_true"), (op.blocks[1], not_cond, "if_false")):
        ops, yielded = _body(block)
        if len(yielded) != len(op.outputs):
            raise TranslationError("a branch yields a different number of values than the if has results")
        results = [b.declare(b.fresh(hint), v.dtype, v.shape) for v in op.outputs]
        with b.sub_block() as sub:
            _translate_body(b, ops)
            for vid, target in zip(yielded, results):
                _assign(b, b.name_of(vid), target)
        scope = b.declare(b.fresh("if_scope"), None, None, kind="STEP_SCOPES")
        b.emit("conditional_block", {"Cond": [condition], "Input": _external_reads(sub)},
               {"Out": results, "Scope": [scope]}, {"sub_block": BLOCK(sub.idx), "is_scalar_condition": BOOL(True)})
        branches.append(results)
    mask = b.declare(b.fresh("if_mask"), "int32", [1])
    b.emit("cast", {"X": [cond]}, {"Out": [mask]},
           {"in_dtype": INT(PROTO_DTYPE["bool"]), "out_dtype": INT(PROTO_DTYPE["int32"])})
    for k, (true_name, false_name) in enumerate(zip(*branches)):
        b.emit("select_input", {"X": [false_name, true_name], "Mask": [mask]}, {"Out": [b.output(op, k)]}, {})


@translates("pd_op.while")
def while_(b: Builder, op: PirOp):
    if len(op.blocks) != 1:
        raise TranslationError(f"a while with {len(op.blocks)} blocks (expected one body)")
    body = op.blocks[0]
    init = op.inputs[1:]
    if len(init) != len(body.args) or len(init) != len(op.outputs):
        raise TranslationError("loop-carried values, block arguments and results do not line up")
    loop_vars = []
    for vid, arg in zip(init, body.args):
        name = b.declare(b.fresh("loop_var"), arg.dtype, arg.shape)
        _assign(b, b.name_of(vid), name)  # a copy: the loop writes it in place
        b.alias(arg.id, name, arg)
        loop_vars.append(name)
    cond_value = b.values.get(op.inputs[0])
    cond = b.declare(b.fresh("loop_cond"), "bool", cond_value.shape if cond_value else [1])
    _assign(b, b.name_of(op.inputs[0]), cond)
    ops, yielded = _body(body)
    if len(yielded) != len(loop_vars) + 1:
        raise TranslationError("the loop body yields a different number of values than it carries")
    with b.sub_block() as sub:
        _translate_body(b, ops)
        sources = [b.name_of(vid) for vid in yielded[1:]]
        # a value yielded into another slot than its own must be read before that slot is overwritten
        staged = []
        for source, target, arg in zip(sources, loop_vars, body.args):
            if source in loop_vars and source != target:
                temp = b.declare(b.fresh("loop_next"), arg.dtype, arg.shape)
                _assign(b, source, temp)
                source = temp
            staged.append((source, target))
        for source, target in staged:
            _assign(b, source, target)
        _assign(b, b.name_of(yielded[0]), cond)
    scopes = b.declare(b.fresh("while_scopes"), None, None, kind="STEP_SCOPES")
    reads = [n for n in _external_reads(sub) if n != cond]
    b.emit("while", {"X": reads, "Condition": [cond]}, {"Out": loop_vars, "StepScopes": [scopes]},
           {"sub_block": BLOCK(sub.idx), "is_test": BOOL(True)})
    for value, name in zip(op.outputs, loop_vars):
        b.alias(value.id, name, value)
