"""The reference program of a debug run: the legacy ProgramDesc that fed the exporters, its ops in
topological order, and a copy of it in which every intermediate tensor is a fetch target.

Paddle Inference and Paddle Lite both return exactly the variables a program fetches, so making every
tensor a fetch target is one way to read all of them from either runtime. In Lite it also stops most
fusions from swallowing a tensor (a fused pattern must not have consumers outside it), which is what a
debug build wants: each op's output where the op wrote it.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Set

from wherry.convert.programdesc import attr_value
from wherry.runtimes.paddle_model import framework_proto

log = logging.getLogger(__name__)

# Output slots that hold no data at inference although Paddle's op protos do not flag them intermediate
# (flatten's XShape, batch_norm's running statistics and ReserveSpace, rnn's training buffers). The slots
# the protos do flag (XShape, dropout's Mask, saved statistics) come from Paddle's op registry. Neither
# kind is fetched or compared: a kernel need not write them, and Paddle Inference refuses to fetch a
# tensor that holds no memory.
_NO_DATA_SLOTS = {"XShape", "SavedMean", "SavedVariance", "MeanOut", "VarianceOut", "ReserveSpace", "Reserve",
                  "DropoutState"}
_SKIPPED_OPS = {"feed", "fetch"}


def _hidden_slots(op_type: str) -> set:
    """Output slots of ``op_type`` that an inference run need not materialise, or whose values depend on an
    order a correct runtime may choose differently (an NMS's Index)."""
    from wherry.convert import paddle_registry

    entry = paddle_registry.op(op_type)
    intermediate = entry.get("intermediate") if entry is not None else None
    return _NO_DATA_SLOTS | set(intermediate or ()) | ({"Index"} if is_nms(op_type) else set())


def is_nms(op_type: str) -> bool:
    """multiclass_nms*, matrix_nms: their ``Out`` is a set of detection rows, compared as a set."""
    return "nms" in op_type


@dataclass
class OpRecord:
    index: int                          # position in block 0 (topological: a program runs in this order)
    type: str
    inputs: Dict[str, List[str]]        # slot -> variable names
    outputs: Dict[str, List[str]]
    attrs: Dict[str, object] = field(default_factory=dict)
    # outputs this op writes but that are not compared here: intermediate slots, a tensor a later op
    # overwrites (in place: fetched, it holds the last writer's value), a value a sub-block may not write
    hidden: Set[str] = field(default_factory=set)

    def data_outputs(self, tensors) -> List[str]:
        return [n for names in self.outputs.values() for n in names if n in tensors and n not in self.hidden]

    def data_inputs(self, tensors) -> List[str]:
        return [n for names in self.inputs.values() for n in names if n in tensors]

    def label(self) -> str:
        shown = [n for names in self.outputs.values() for n in names if n not in self.hidden]
        first = shown[0] if shown else next((n for names in self.outputs.values() for n in names), "?")
        return f"{self.type} #{self.index} -> {first}"


@dataclass
class Program:
    ops: List[OpRecord]
    tensors: Dict[str, str]             # intermediate (non-persistable, dense) variable -> dtype name
    params: List[str]
    feeds: List[str]
    fetches: List[str]

    def detections(self) -> Set[str]:
        """Tensors holding NMS detection rows (compared as sets, as ``check`` compares such outputs), also after
        the row-wise ops an export fetches them through (``source.ROW_WISE_OPS``: Paddle 2.x's `scale`)."""
        from wherry.convert.source import ROW_WISE_OPS

        found = {n for op in self.ops if is_nms(op.type) for n in op.outputs.get("Out", []) if n not in op.hidden}
        for op in self.ops:
            if op.type in ROW_WISE_OPS and set(op.inputs.get("X", [])) & found:
                found.update(op.outputs.get("Out", []))
        return found

    def producer(self) -> Dict[str, OpRecord]:
        """tensor -> the op whose result it holds (its last writer)."""
        return {name: op for op in self.ops for names in op.outputs.values() for name in names
                if name not in op.hidden}


def read(model_file: Path) -> Program:
    """Block 0 of a legacy program: ops in order, and the tensors a debug run can compare."""
    framework_pb2 = framework_proto()

    from wherry.convert.source import load_program_desc

    desc = load_program_desc(Path(model_file))
    block = desc.blocks[0]
    dense = framework_pb2.VarType.DENSE_TENSOR
    names = framework_pb2.VarType.Type.Name
    tensors, params = {}, []
    for var in block.vars:
        if var.persistable:
            params.append(var.name)
        elif var.type.type == dense:
            tensors[var.name] = names(var.type.dense_tensor.tensor.data_type).lower()
    ops, feeds, fetches = [], [], []
    for i, op in enumerate(block.ops):
        inputs = {s.parameter: list(s.arguments) for s in op.inputs}
        outputs = {s.parameter: list(s.arguments) for s in op.outputs}
        if op.type == "feed":
            feeds += outputs.get("Out", [])
        elif op.type == "fetch":
            fetches += inputs.get("X", [])
        if op.type in _SKIPPED_OPS:
            continue
        attrs = {a.name: attr_value(a) for a in op.attrs if not a.name.startswith("op_")}
        ops.append(OpRecord(i, op.type, inputs, outputs, attrs))
    _hide_unwritten(ops, feeds)
    _hide_unread(ops, desc, fetches)
    # a tensor is worth comparing when an op really writes data into it
    written = {n for op in ops for names in op.outputs.values() for n in names if n not in op.hidden}
    tensors = {n: t for n, t in tensors.items() if n in written or n in feeds}
    return Program(ops, tensors, params, feeds, fetches)


def _hide_unread(ops: List[OpRecord], desc, fetches: List[str]) -> None:
    """Hide the outputs nothing reads: no op of any block takes them and the program does not fetch them
    (an LSTM's final states when only its sequence output is used, an NMS's Index). A kernel may leave
    such a value unwritten (Paddle Lite's x86 rnn does) without the model's outputs being any different,
    so it is no place for a divergence to start."""
    read = set(fetches)
    for block in desc.blocks:
        for op in block.ops:
            for slot in op.inputs:
                read.update(slot.arguments)
    for op in ops:
        for names in op.outputs.values():
            op.hidden.update(n for n in names if n not in read)


def _hide_unwritten(ops: List[OpRecord], feeds: List[str]) -> None:
    """Mark, per op, the outputs a run does not leave as this op's result (``OpRecord.hidden``)."""
    written_before = set(feeds)
    last_writer: Dict[str, OpRecord] = {}
    for op in ops:
        hidden_slots = _hidden_slots(op.type)
        # an op running a sub-block (conditional_block, while) writes its outputs there, maybe never (a
        # branch not taken): such a value is data only if block 0 wrote it before (a loop variable)
        runs_block = "sub_block" in op.attrs or "sub_blocks" in op.attrs
        for slot, names in op.outputs.items():
            for name in names:
                if slot in hidden_slots or (runs_block and name not in written_before):
                    op.hidden.add(name)
                else:
                    last_writer[name] = op
        written_before.update(n for names in op.outputs.values() for n in names if n not in op.hidden)
    for op in ops:
        for names in op.outputs.values():
            op.hidden.update(n for n in names if last_writer.get(n) is not op)


def tapped_copy(model_file: Path, params_file: Path, out_dir: Path, names: Optional[List[str]] = None,
                last_op: Optional[int] = None) -> tuple:
    """Write a copy of the program in which ``names`` (default: every compared tensor) are fetched too,
    after the program's own outputs. With ``last_op`` (an ``OpRecord.index``) the copy is the program's
    prefix: the ops after that one are dropped and only ``names`` are fetched (a crash's bisection runs such
    prefixes). Returns (model file, params file, the fetched names in order)."""
    import shutil

    framework_pb2 = framework_proto()

    from wherry.convert.source import load_program_desc

    program = read(model_file)
    desc = load_program_desc(Path(model_file))
    block = desc.blocks[0]
    fetch_ops = [op for op in block.ops if op.type == "fetch"]
    holder = fetch_ops[0].outputs[0].arguments[0] if fetch_ops else "fetch"
    fetched = list(program.fetches)
    if last_op is not None:
        kept = []
        for i, op in enumerate(block.ops):
            if i <= last_op and op.type != "fetch":
                kept.append(type(op)())
                kept[-1].CopyFrom(op)   # copies: the block's own op messages go with the clear below
        del block.ops[:]
        block.ops.extend(kept)
        fetched = []
    if names is None:  # every tensor an op computes, in program order
        names = list(dict.fromkeys(n for op in program.ops for n in op.data_outputs(program.tensors)))
    wanted = [n for n in names if n not in fetched and n not in program.feeds]
    for name in wanted:
        op = block.ops.add()
        op.type = "fetch"
        slot = op.inputs.add()
        slot.parameter, slot.arguments[:] = "X", [name]
        slot = op.outputs.add()
        slot.parameter, slot.arguments[:] = "Out", [holder]
        attr = op.attrs.add()
        attr.name, attr.type, attr.i = "col", framework_pb2.AttrType.INT, len(fetched)
        fetched.append(name)
    log.info("%s: %d tensors made fetch targets", model_file, len(wanted))
    out_dir.mkdir(parents=True, exist_ok=True)
    out_model, out_params = out_dir / "model.pdmodel", out_dir / "model.pdiparams"
    out_model.write_bytes(desc.SerializeToString())
    shutil.copyfile(params_file, out_params)
    return out_model, out_params, fetched
