"""PIR -> legacy: translate Paddle 3 ``model.json`` programs into ProgramDescs Paddle Lite reads.

    result = translate("model.json", "model.pdiparams", out_dir)
    result.model_file, result.params_file   # legacy model.pdmodel + model.pdiparams

Table-driven (``ops.py``: one translator per PIR op). Every op is checked
before anything is written; untranslatable ops raise ``UntranslatableOps``
naming each op and where it occurs. The parameter file is copied as is: PIR
and legacy exports store parameters identically (sorted by name).
"""
from __future__ import annotations

import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

from wherry.convert.pir.builder import INT, Builder, TranslationError
from wherry.convert.pir.ops import TRANSLATORS
from wherry.convert.pir.reader import read_program  # noqa: F401 - public
from wherry.runtimes.errors import WherryError

log = logging.getLogger(__name__)

# Ops handled by the translator itself rather than the table.
_FRAME_OPS = ("pd_op.data", "pd_op.fetch")
SUPPORTED_OPS = sorted(set(TRANSLATORS) | set(_FRAME_OPS))


class UntranslatableOps(WherryError):
    """PIR ops the translator has no legacy form for."""

    def __init__(self, problems: List[str], op_names: List[str]):
        shown = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"cannot translate this PIR program for Paddle Lite: {len(problems)} op(s) have no "
                         f"legacy form ({', '.join(sorted(set(op_names)))}):\n{shown}{more}",
                         "export the model in the legacy format (FLAGS_enable_pir_api=0 with Paddle 3, or Paddle "
                         "2.x) or report these ops to wherry; the ONNX and .nb routes both need them")
        self.op_names = sorted(set(op_names))


@dataclass
class TranslationResult:
    model_file: Path
    params_file: Path
    ops: Counter = field(default_factory=Counter)
    notes: List[str] = field(default_factory=list)


def _where(op) -> str:
    outs = ", ".join(f"%{v.id}" for v in op.outputs) or "no results"
    return f"{op.full_name} (op #{op.index}, results {outs})"


def translate(json_path, params_path, out_dir) -> TranslationResult:
    program = read_program(json_path)
    unknown = [op for op in program.ops if op.full_name not in TRANSLATORS and op.full_name not in _FRAME_OPS]
    control_flow = [op for op in program.ops if op.has_regions and op not in unknown]
    if unknown or control_flow:
        problems = [f"{_where(op)}: no translator" for op in unknown]
        problems += [f"{_where(op)}: control flow (nested blocks)" for op in control_flow]
        raise UntranslatableOps(problems, [op.full_name for op in unknown + control_flow])

    builder = Builder(program)
    builder.declare("feed", None, None, kind="FEED_MINIBATCH")
    builder.declare("fetch", None, None, kind="FETCH_LIST")
    problems, names, fetches = [], [], []
    feed_col = 0
    for op in program.ops:
        try:
            if op.full_name == "pd_op.data":
                name = str(op.attrs["name"])
                value = op.outputs[0]
                builder.alias(value.id, builder.declare(name, value.dtype, value.shape), value)
                builder.emit("feed", {"X": ["feed"]}, {"Out": [name]}, {"col": INT(feed_col)})
                feed_col += 1
            elif op.full_name == "pd_op.fetch":
                fetches.append(op)
            else:
                TRANSLATORS[op.full_name](builder, op)
        except TranslationError as exc:
            problems.append(f"{_where(op)}: {exc}")
            names.append(op.full_name)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            problems.append(f"{_where(op)}: unexpected attributes ({type(exc).__name__}: {exc})")
            names.append(op.full_name)
    if problems:
        raise UntranslatableOps(problems, names)
    for op in sorted(fetches, key=lambda o: int(o.attrs.get("col", 0))):
        _emit_fetch(builder, op)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_file, params_file = out_dir / "model.pdmodel", out_dir / "model.pdiparams"
    builder.desc.version.version = 0
    model_file.write_bytes(builder.desc.SerializeToString())
    shutil.copyfile(params_path, params_file)
    ops = Counter(op.type for op in builder.block.ops if op.type not in ("feed", "fetch"))
    notes = [f"PIR ops translated: {sum(1 for o in program.ops if o.dialect == 'pd_op')} -> "
             f"{sum(ops.values())} legacy ops"]
    log.info("translated %s: %s", json_path, notes[0])
    return TranslationResult(model_file, params_file, ops, notes)


def _emit_fetch(builder: Builder, op) -> None:
    """Fetch under the PIR fetch name, so every artifact keeps the reference model's output names."""
    source = op.inputs[0]
    name = str(op.attrs.get("name", f"fetch_{op.attrs.get('col', 0)}"))
    current = builder.name_of(source)
    if current != name and not current.endswith(".tmp"):
        # a parameter or an input fetched directly: copy it under the fetch name
        builder.declare(name, op.outputs[0].dtype, op.outputs[0].shape)
        builder.emit("assign", {"X": [current]}, {"Out": [name]}, {})
    elif current != name:
        _rename(builder, current, name)
    builder.emit("fetch", {"X": [name]}, {"Out": ["fetch"]}, {"col": INT(op.attrs.get("col", 0))})


def _rename(builder: Builder, old: str, new: str) -> None:
    for var in builder.block.vars:
        if var.name == old:
            var.name = new
    for op in builder.block.ops:
        for slot in list(op.inputs) + list(op.outputs):
            slot.arguments[:] = [new if a == old else a for a in slot.arguments]
    builder.declared.discard(old)
    builder.declared.add(new)
    for vid, name in list(builder.names.items()):
        if name == old:
            builder.names[vid] = new
