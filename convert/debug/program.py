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
from typing import TYPE_CHECKING, Dict, List, Optional, Set

from wherry.convert.programdesc import attr_value, set_attr
from wherry.runtimes.paddle_model import framework_proto

if TYPE_CHECKING:
    import numpy as np

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


# suffix of the block-0 copy through which a tensor of a control-flow sub-block is fetched (see tapped_copy)
TAP_SUFFIX = "@wherry_tap"
# sub-block tensors of these dtypes are tapped: a branch not taken leaves the copy at its NaN filler
_TAPPED_SUB_BLOCK_DTYPES = ("fp32", "fp64", "fp16", "bf16")


@dataclass
class OpRecord:
    # block 0: the op's position there (topological: a program runs in this order); an op of a control-flow
    # sub-block: a number after block 0's ones (it runs inside ``runner``, so it is listed just before it)
    index: int
    type: str
    inputs: Dict[str, List[str]]        # slot -> variable names
    outputs: Dict[str, List[str]]
    attrs: Dict[str, object] = field(default_factory=dict)
    # outputs this op writes but that are not compared here: intermediate slots, a tensor a later op
    # overwrites (in place: fetched, it holds the last writer's value), a value a sub-block may not write
    hidden: Set[str] = field(default_factory=set)
    block: int = 0                      # the program block the op belongs to
    runner: Optional["OpRecord"] = None  # a sub-block's op: the block-0 op (while, conditional_block) running it

    def data_outputs(self, tensors) -> List[str]:
        return [n for names in self.outputs.values() for n in names if n in tensors and n not in self.hidden]

    def data_inputs(self, tensors) -> List[str]:
        return [n for names in self.inputs.values() for n in names if n in tensors]

    def label(self) -> str:
        shown = [n for names in self.outputs.values() for n in names if n not in self.hidden]
        first = shown[0] if shown else next((n for names in self.outputs.values() for n in names), "?")
        return f"{self.type} #{self.index}{self.where()} -> {first}"

    def where(self) -> str:
        """Where a sub-block's op runs (" (block 1 of while #8)"); empty for block 0."""
        return f" (block {self.block} of {self.runner.type} #{self.runner.index})" if self.runner else ""


@dataclass
class Program:
    ops: List[OpRecord]
    tensors: Dict[str, str]             # intermediate (non-persistable, dense) variable -> dtype name
    params: List[str]
    feeds: List[str]
    fetches: List[str]
    sub_block_tensors: Dict[str, int] = field(default_factory=dict)   # a sub-block's tensor -> its block

    def top_ops(self) -> List[OpRecord]:
        """Block 0's ops (what a prefix of the program can be cut after)."""
        return [op for op in self.ops if op.block == 0]

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
    """A legacy program's ops in execution order (a control-flow op's sub-block ops just before it), and the
    tensors a debug run can compare."""
    framework_pb2 = framework_proto()

    from wherry.convert.source import load_program_desc

    desc = load_program_desc(Path(model_file))
    block = desc.blocks[0]
    dense = framework_pb2.VarType.DENSE_TENSOR
    names = framework_pb2.VarType.Type.Name
    tensors: Dict[str, str] = {}
    params: List[str] = []
    sub_block_tensors: Dict[str, int] = {}
    for var in block.vars:
        if var.persistable:
            params.append(var.name)
        elif var.type.type == dense:
            tensors[var.name] = names(var.type.dense_tensor.tensor.data_type).lower()
    ops: List[OpRecord] = []
    feeds: List[str] = []
    fetches: List[str] = []
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
        record = OpRecord(i, op.type, inputs, outputs, attrs)
        # the ops of the blocks it runs come first: they run inside it, before its outputs are final
        ops += _sub_block_ops(desc, record, record, len(block.ops) + sum(o.block != 0 for o in ops), tensors,
                              sub_block_tensors)
        ops.append(record)
    _hide_unwritten([op for op in ops if op.block == 0], feeds)
    _hide_unread(ops, desc, fetches)
    # a tensor is worth comparing when an op really writes data into it
    written = {n for op in ops for names in op.outputs.values() for n in names if n not in op.hidden}
    tensors = {n: t for n, t in tensors.items() if n in written or n in feeds}
    return Program(ops, tensors, params, feeds, fetches, {n: b for n, b in sub_block_tensors.items() if n in tensors})


def _sub_blocks(op: OpRecord) -> List[int]:
    """The blocks a control-flow op runs (while, conditional_block: ``sub_block``; some ops: ``sub_blocks``)."""
    value = op.attrs.get("sub_block", op.attrs.get("sub_blocks"))
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value] if isinstance(value, list) else []


def _sub_block_ops(desc, op: OpRecord, runner: OpRecord, first_index: int, tensors: Dict[str, str],
                   found: Dict[str, int]) -> List[OpRecord]:
    """The ops of the sub-blocks ``op`` runs (nested ones first, as they run), numbered from ``first_index``;
    their blocks' float tensors join ``tensors`` (``found``: tensor -> block). Within a sub-block only the
    tensors it declares count as its ops' results: a write to an outer variable (a loop variable, a branch's
    result) is judged at the control-flow op, when the block is done."""
    framework_pb2 = framework_proto()
    dense = framework_pb2.VarType.DENSE_TENSOR
    records: List[OpRecord] = []
    for index in _sub_blocks(op):
        block = desc.blocks[index]
        local = set()
        for var in block.vars:
            dtype = framework_pb2.VarType.Type.Name(var.type.dense_tensor.tensor.data_type).lower()
            if (not var.persistable and var.type.type == dense and var.name not in tensors
                    and dtype in _TAPPED_SUB_BLOCK_DTYPES):
                tensors[var.name], found[var.name] = dtype, index
                local.add(var.name)
        last_writer: Dict[str, OpRecord] = {}
        for position, inner in enumerate(block.ops):
            attrs = {a.name: attr_value(a) for a in inner.attrs if not a.name.startswith("op_")}
            record = OpRecord(first_index + len(records), inner.type, {s.parameter: list(s.arguments) for s in inner.inputs},
                              {s.parameter: list(s.arguments) for s in inner.outputs}, attrs, block=index, runner=runner)
            records += _sub_block_ops(desc, record, runner, first_index + len(records), tensors, found)
            record.index = first_index + len(records)
            hidden_slots = _hidden_slots(inner.type)
            for slot, names in record.outputs.items():
                for name in names:
                    if slot in hidden_slots or name not in local:
                        record.hidden.add(name)
                    else:
                        last_writer[name] = record
            records.append(record)
        for record in records:
            if record.block == index:
                record.hidden.update(n for names in record.outputs.values() for n in names
                                     if last_writer.get(n) is not record)
    return records


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
    after the program's own outputs. With ``last_op`` (an ``OpRecord.index`` of block 0) the copy is the
    program's prefix: the ops after that one are dropped and only ``names`` are fetched (a crash's bisection
    runs such prefixes). Returns (model file, params file, the fetched variables in order: a sub-block's
    tensor under its ``TAP_SUFFIX`` name; ``untapped`` turns a run's results back into program names)."""
    import shutil

    from wherry.convert.source import load_program_desc

    program = read(model_file)
    desc = load_program_desc(Path(model_file))
    block = desc.blocks[0]
    fetch_ops = [op for op in block.ops if op.type == "fetch"]
    holder = fetch_ops[0].outputs[0].arguments[0] if fetch_ops else "fetch"
    fetched = list(program.fetches)
    if last_op is not None:
        _replace_ops(block, [op for i, op in enumerate(block.ops) if i <= last_op and op.type != "fetch"])
        fetched = []
    if names is None:  # every tensor an op computes, in program order
        names = list(dict.fromkeys(n for op in program.ops for n in op.data_outputs(program.tensors)))
    wanted = [n for n in names if n not in fetched and n not in program.feeds]
    inner = [n for n in wanted if n in program.sub_block_tensors]
    if inner and last_op is None:
        _copy_out_of_sub_blocks(desc, program, inner)
    for name in wanted:
        if name in program.sub_block_tensors:
            if last_op is not None:   # a prefix cuts block 0 only: a sub-block's tensor comes with its runner
                continue
            name += TAP_SUFFIX
        op = block.ops.add()
        op.type = "fetch"
        slot = op.inputs.add()
        slot.parameter, slot.arguments[:] = "X", [name]
        slot = op.outputs.add()
        slot.parameter, slot.arguments[:] = "Out", [holder]
        _add_attr(op, "col", "INT", len(fetched))
        fetched.append(name)
    log.info("%s: %d tensors made fetch targets (%d of them in sub-blocks)", model_file, len(wanted), len(inner))
    out_dir.mkdir(parents=True, exist_ok=True)
    out_model, out_params = out_dir / "model.pdmodel", out_dir / "model.pdiparams"
    out_model.write_bytes(desc.SerializeToString())
    shutil.copyfile(params_file, out_params)
    return out_model, out_params, fetched


def _copy_out_of_sub_blocks(desc, program: Program, names: List[str]) -> None:
    """Make the sub-block tensors ``names`` fetchable from block 0. A fetch reads block 0's scope, and a
    sub-block's own variables live in a scope its control-flow op drops when the block is done. So each
    gets a block-0 twin (``NAME@wherry_tap``), an ``assign`` right after its last writer in the sub-block
    copies it there (a while loop: its last iteration's value), and a ``fill_constant`` of one NaN before
    the control-flow op gives the twin a value when the block never runs (a branch not taken; ``untapped``
    drops it then). Paddle Inference and Paddle Lite both run sub-blocks against their parent scopes, so
    both read the twin."""
    framework_pb2 = framework_proto()
    block0 = desc.blocks[0]
    runners = {op.index: op for op in program.top_ops()}
    fillers: Dict[int, list] = {}            # block-0 position -> fill_constant ops to run before it
    copies: Dict[int, Dict[int, list]] = {}  # block -> position of the last writer -> assign ops after it
    runner_of = {op.block: op.runner for op in program.ops if op.runner is not None}
    for name in names:
        index = program.sub_block_tensors[name]
        sub = desc.blocks[index]
        var = next(v for v in sub.vars if v.name == name)
        twin = block0.vars.add()
        twin.CopyFrom(var)
        twin.name, twin.persistable = name + TAP_SUFFIX, False
        fill = framework_pb2.OpDesc(type="fill_constant")
        fill.outputs.add(parameter="Out", arguments=[twin.name])
        for attr, kind, value in (("shape", "LONGS", [1]), ("value", "FLOAT", float("nan")), ("str_value", "STRING", ""),
                                  ("dtype", "INT", var.type.dense_tensor.tensor.data_type), ("force_cpu", "BOOLEAN", False)):
            _add_attr(fill, attr, kind, value)
        runner = runner_of[index]
        assert runner is not None and runner.index in runners, "a sub-block's op has a block-0 runner"
        fillers.setdefault(runner.index, []).append(fill)
        writer = max(i for i, op in enumerate(sub.ops) if any(name in s.arguments for s in op.outputs))
        copy = framework_pb2.OpDesc(type="assign")
        copy.inputs.add(parameter="X", arguments=[name])
        copy.outputs.add(parameter="Out", arguments=[twin.name])
        copies.setdefault(index, {}).setdefault(writer, []).append(copy)
    for index, after in copies.items():
        sub = desc.blocks[index]
        _replace_ops(sub, [o for i, op in enumerate(sub.ops) for o in [op, *after.get(i, [])]])
    _replace_ops(block0, [o for i, op in enumerate(block0.ops) for o in [*fillers.get(i, []), op]])


def _replace_ops(block, ops: list) -> None:
    """Set a block's op list to copies of ``ops`` (the block's own op messages go with the clear)."""
    kept = []
    for op in ops:
        kept.append(type(op)())
        kept[-1].CopyFrom(op)
    del block.ops[:]
    block.ops.extend(kept)


def _add_attr(op, name: str, kind: str, value) -> None:
    attr = op.attrs.add()
    attr.name = name
    set_attr(attr, kind, value)


def untapped(values: Dict[str, "np.ndarray"]) -> Dict[str, "np.ndarray"]:
    """A tapped run's results under the program's names: a sub-block tensor's twin renamed back, and dropped
    when it still holds its filler (the block never ran)."""
    import numpy as np

    result = {}
    for name, value in values.items():
        if name.endswith(TAP_SUFFIX):
            array = np.asarray(value)
            if array.size == 1 and array.dtype.kind == "f" and np.isnan(array).all():
                continue
            name = name[:-len(TAP_SUFFIX)]
        result[name] = value
    return result
