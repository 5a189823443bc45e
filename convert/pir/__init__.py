"""PIR -> legacy: translate Paddle 3 ``model.json`` programs into ProgramDescs Paddle Lite reads.

    result = translate("model.json", "model.pdiparams", out_dir)
    result.model_file, result.params_file   # legacy model.pdmodel + model.pdiparams

Table-driven (``ops.py``: how each PIR op kind travels — a hand-written
translator, a ``Route`` for renamed slots, or the generic name match of
``generic.py`` over the wheel's own op definitions). Every op is checked before
anything is written; untranslatable ops raise ``UntranslatableOps`` naming each
op and where it occurs; ``analyze`` reports the same per op kind. ``pd_op.data``
(``pd_op.feed`` in programs Paddle translated from legacy ones) and ``pd_op.fetch``
(the program's frame) are handled here. The parameter file
is copied as is: PIR and legacy exports store parameters identically (sorted by
name).
"""
from __future__ import annotations

import logging
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

from wherry.runtimes.errors import WherryError

from .builder import INT, Builder, TranslationError, UpstreamFailed
from .ops import describe, translate_op  # noqa: F401 - describe is public
from .reader import read_program

log = logging.getLogger(__name__)

class UntranslatableOps(WherryError):
    """PIR ops the translator has no legacy form for."""

    def __init__(self, problems: List[str], op_names: List[str]):
        shown = "\n".join(f"  - {p}" for p in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"cannot translate this PIR program to a legacy program: {len(problems)} op(s) have no "
                         f"legacy form ({', '.join(sorted(set(op_names)))}):\n{shown}{more}",
                         "export the model in the legacy format (FLAGS_enable_pir_api=0 with Paddle 3, or Paddle "
                         "2.x) or report these ops to wherry")
        self.op_names = sorted(set(op_names))


@dataclass
class TranslationResult:
    model_file: Path
    params_file: Path
    ops: Counter = field(default_factory=Counter)
    notes: List[str] = field(default_factory=list)


@dataclass
class OpKind:
    """How every op of one PIR kind in a program travelled (or why it did not)."""
    name: str
    count: int = 0
    routes: set = field(default_factory=set)       # e.g. "generic -> where", "table -> top_k_v2"
    legacy: set = field(default_factory=set)       # legacy op types it became
    problems: List[str] = field(default_factory=list)

    @property
    def translates(self) -> bool:
        return not self.problems


def _where(op) -> str:
    outs = ", ".join(f"%{v.id}" for v in op.outputs) or "no results"
    return f"{op.full_name} (op #{op.index}, results {outs})"


def _build(program):
    """Translate every op into a Builder; returns it with the per-kind record."""
    builder = Builder(program)
    # persistable, as Paddle's own legacy exports declare them: Paddle's executor looks a feed holder up in
    # the global scope, and a non-persistable one is made in a local scope instead, where FeedOp finds no
    # feed list and segfaults (Paddle PTQ on a translated program: FeedOp::GetExpectedKernelType)
    builder.declare("feed", None, None, persistable=True, kind="FEED_MINIBATCH")
    builder.declare("fetch", None, None, persistable=True, kind="FETCH_LIST")
    kinds = {}

    def on_op(op, route=None, problem=None, legacy=()):
        kind = kinds.setdefault(op.full_name, OpKind(op.full_name))
        kind.legacy.update(legacy)
        if route is not None:
            kind.count += 1
            kind.routes.add(route)
        if problem is not None:
            kind.problems.append(f"{_where(op)}: {problem}")

    builder.on_op = on_op
    translate_block(builder, program.ops, top_level=True)
    return builder, kinds


def translate_block(builder: Builder, ops, top_level=False) -> None:
    """Translate ``ops`` into the builder's current block (control-flow translators recurse here)."""
    for op in ops:
        block, before = builder.block, len(builder.block.ops)
        try:
            if top_level and op.full_name in ("pd_op.data", "pd_op.feed"):
                name = str(op.attrs["name"])
                value = op.outputs[0]
                builder.alias(value.id, builder.declare(name, value.dtype, value.shape), value)
                builder.emit("feed", {"X": ["feed"]}, {"Out": [name]}, {"col": INT(builder.feed_col)})
                builder.feed_col += 1
                route = "frame"
            elif top_level and op.full_name == "pd_op.fetch":
                builder.fetches.append(op)
                route = "frame"
            else:
                route = translate_op(builder, op)
            builder.on_op(op, route=route, legacy=[o.type for o in block.ops[before:]])
        except UpstreamFailed:
            # an operand comes from an op that already failed: that op's problem is the one to report. Its
            # results fail too, or their users would report them as "used before it is defined"
            builder.failed.update(v.id for v in op.outputs)
        except TranslationError as exc:
            builder.on_op(op, problem=str(exc))
            builder.failed.update(v.id for v in op.outputs)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            builder.on_op(op, problem=f"unexpected attributes ({type(exc).__name__}: {exc})")
            builder.failed.update(v.id for v in op.outputs)


def analyze(json_path) -> Dict[str, OpKind]:
    """Per PIR op kind: how it translates, or what stops it (nothing is written)."""
    return _build(read_program(json_path))[1]


def translate(json_path, params_path, out_dir) -> TranslationResult:
    program = read_program(json_path)
    builder, kinds = _build(program)
    problems = [p for k in kinds.values() for p in k.problems]
    if problems:
        raise UntranslatableOps(problems, [k.name for k in kinds.values() if k.problems])
    renames: Dict[str, str] = {}
    for op in sorted(builder.fetches, key=lambda o: int(o.attrs.get("col", 0))):
        _emit_fetch(builder, op, renames)
    _rename(builder, renames)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_file, params_file = out_dir / "model.pdmodel", out_dir / "model.pdiparams"
    builder.desc.version.version = 0
    model_file.write_bytes(builder.desc.SerializeToString())
    if Path(params_path).is_file():  # a program without parameters has no parameter file
        shutil.copyfile(params_path, params_file)
    ops = Counter(op.type for block in builder.desc.blocks for op in block.ops if op.type not in ("feed", "fetch"))
    notes = [f"PIR ops translated: {sum(1 for o in program.walk() if o.dialect == 'pd_op')} -> "
             f"{sum(ops.values())} legacy ops"]
    log.info("translated %s: %s", json_path, notes[0])
    return TranslationResult(model_file, params_file, ops, notes)


def _emit_fetch(builder: Builder, op, renames: Dict[str, str]) -> None:
    """Fetch under the PIR fetch name, so every artifact keeps the reference model's output names."""
    source = op.inputs[0]
    name = str(op.attrs.get("name", f"fetch_{op.attrs.get('col', 0)}"))
    current = builder.name_of(source)
    if current != name and (not current.endswith(".tmp") or current in renames):
        # a parameter or an input fetched directly, or a value fetched twice: copy it under the fetch name
        builder.declare(name, op.outputs[0].dtype, op.outputs[0].shape)
        builder.emit("assign", {"X": [current]}, {"Out": [name]}, {})
    elif current != name:
        renames[current] = name
    builder.emit("fetch", {"X": [name]}, {"Out": ["fetch"]}, {"col": INT(op.attrs.get("col", 0))})


def _rename(builder: Builder, renames: Dict[str, str]) -> None:
    """Rename variables everywhere (sub-blocks may read them too), in one pass."""
    if not renames:
        return
    for block in builder.desc.blocks:
        for var in block.vars:
            if var.name in renames:
                var.name = renames[var.name]
        for op in block.ops:
            for slot in list(op.inputs) + list(op.outputs):
                if any(a in renames for a in slot.arguments):
                    slot.arguments[:] = [renames.get(a, a) for a in slot.arguments]
    for old, new in renames.items():
        builder.declared.discard(old)
        builder.declared.add(new)
    for vid, name in list(builder.names.items()):
        if name in renames:
            builder.names[vid] = renames[name]
