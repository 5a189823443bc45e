"""The generic translator: a PIR op becomes the legacy op of the same shape, matched by name.

Most PIR ops are a legacy op under a (possibly) new name with renamed operands: ``x`` is ``X``,
``out`` is ``Out``, ``index`` is ``Index``. Both sides' definitions come from the installed wheel
(``schema``), so the matching is mechanical:

* operands match a legacy input slot by normalized name (case and underscores ignored); an operand
  that is a compile-time constant (``full`` / ``full_int_array``) and matches a legacy *attribute*
  (``k``, ``axis``, ``repeat_times``) becomes that attribute, as legacy programs write it;
* attributes keep their names; their values are typed as the legacy proto says;
* results match output slots by name; legacy-only outputs get a placeholder variable (``XShape``);
* every legacy attribute not given takes the default Paddle registers for it.

A ``Route`` (ops.py) adjusts the few names that differ. Anything the matching cannot place — an
operand, attribute or result with no legacy counterpart, a run-time value where the legacy op needs
a constant — is a ``TranslationError``: nothing is dropped silently.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

from . import schema
from .builder import (BOOL, BOOLS, FLOAT, FLOAT64, FLOAT64S, FLOATS, INT, INTS, LONG, LONGS, STRING, STRINGS,
                      Builder, TranslationError, proto_dtype)
from .reader import PirOp

# PIR attributes that describe placement or training, not the computation (is_test: legacy ops that
# have it are always written for inference)
IGNORED_ATTRS = frozenset({"place", "stop_gradient", "persistable", "struct_name", "is_test"})


@dataclass(frozen=True)
class Route:
    """How one PIR op kind travels when names alone do not tell. Empty fields: match by name."""
    legacy: str                                              # legacy op type
    inputs: Dict[str, str] = field(default_factory=dict)     # PIR operand -> legacy slot or attribute
    attrs: Dict[str, str] = field(default_factory=dict)      # PIR attribute -> legacy attribute
    outputs: Dict[str, str] = field(default_factory=dict)    # PIR result -> legacy output slot
    fixed: Dict[str, object] = field(default_factory=dict)   # legacy attributes set (or computed from the op)
    drop: Tuple[str, ...] = ()                               # PIR attributes/operands with no effect at inference
    why: str = ""                                            # what differs, for the reader of the table


# Paddle-wide renames between PIR and legacy slot names, tried after the exact (normalized) name
_ALIASES = {"x": ("input", "operands"), "inputs": ("x",), "out": ("y", "output")}


def _norm(name: str) -> str:
    return name.replace("_", "").lower()


def _match(name: str, table: dict, override: dict):
    """The legacy entry (slot or attribute) that PIR name ``name`` matches, by override, name or alias."""
    if name in override:
        return table.get(_norm(override[name]))
    key = _norm(name)
    if key in table:
        return table[key]
    for alias in _ALIASES.get(key, ()):
        if alias in table:
            return table[alias]
    return None


def legacy_type_for(pir_name: str) -> Optional[str]:
    """The legacy op a PIR op of this name becomes when no Route says otherwise."""
    base = pir_name.rstrip("_")
    for candidate in (f"{base}_v2", base):  # a *_v2 legacy op is the one PIR's op was made from
        if schema.legacy_op(candidate) is not None:
            return candidate
    return None


def typed(kind: int, value, what: str):
    """A Python value as the typed attribute the legacy proto declares."""
    try:
        if kind == schema.ATTR_INT:
            if isinstance(value, str):
                return INT(proto_dtype(value))
            return INT(_scalar(value))
        if kind == schema.ATTR_LONG:
            return LONG(_scalar(value))
        if kind == schema.ATTR_FLOAT:
            return FLOAT(_scalar(value))
        if kind == schema.ATTR_FLOAT64:
            return FLOAT64(_scalar(value))
        if kind == schema.ATTR_BOOLEAN:
            return BOOL(_scalar(value))
        if kind == schema.ATTR_STRING:
            return STRING(value)
        if kind == schema.ATTR_INTS:
            return INTS(_list(value))
        if kind == schema.ATTR_LONGS:
            return LONGS(_list(value))
        if kind == schema.ATTR_FLOATS:
            return FLOATS(_list(value))
        if kind == schema.ATTR_FLOAT64S:
            return FLOAT64S(_list(value))
        if kind == schema.ATTR_STRINGS:
            return STRINGS(_list(value))
        if kind == schema.ATTR_BOOLEANS:
            return BOOLS(_list(value))
    except (TypeError, ValueError) as exc:
        raise TranslationError(f"{what}: value {value!r} does not fit the legacy attribute ({exc})") from None
    raise TranslationError(f"{what}: legacy attribute type {kind} is not written by the translator")


def _scalar(value):
    if isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError("a list where one value is expected")
        return value[0]
    return value


def _list(value):
    return list(value) if isinstance(value, (list, tuple)) else [value]


def translate_generic(b: Builder, op: PirOp, route: Optional[Route] = None) -> str:
    """Emit the legacy form of ``op``; returns the legacy op type."""
    legacy_type = route.legacy if route else legacy_type_for(op.name)
    proto = schema.legacy_op(legacy_type) if legacy_type else None
    if legacy_type is None or proto is None:
        raise TranslationError("no legacy op of the same shape (and no entry in the op table)")
    if not op.input_names and op.inputs or not op.output_names and op.outputs:
        raise TranslationError("Paddle gives no operand names for this op")
    route = route or Route(legacy_type)
    slots = {_norm(s.name): s for s in proto.inputs}
    out_slots = {_norm(s.name): s for s in proto.outputs}
    attr_types = {_norm(a): (a, t) for a, t in proto.attrs.items()}
    inputs: Dict[str, list] = {}
    attrs: Dict[str, tuple] = {}

    for k, pir_name in enumerate(op.input_names):
        if not b.has_input(op, k):
            continue
        vid = op.inputs[k]
        what = f"operand {pir_name}"
        if pir_name in route.drop:
            continue
        as_attr = _match(pir_name, attr_types, route.inputs)
        slot = _match(pir_name, slots, route.inputs)
        if as_attr is not None and (b.is_const(vid) or slot is None or slot.name in tensor_twins(legacy_type)):
            # an attribute, or at run time the tensor input the legacy op takes it through (reshape2's Shape)
            const_or_tensor(b, op, k, legacy_type, as_attr[0], inputs, attrs,
                            lambda value, t=as_attr[1], w=what: typed(t, value, w))
        elif slot is not None:
            inputs[slot.name] = _operand_names(b, vid, slot, what)
        else:
            raise TranslationError(f"{what} has no counterpart in legacy {legacy_type}")

    for pir_name in op.attr_names:
        if pir_name in IGNORED_ATTRS or pir_name in route.drop or pir_name not in op.attrs:
            continue
        match = _match(pir_name, attr_types, route.attrs)
        if match is None:
            raise TranslationError(f"attribute {pir_name} has no counterpart in legacy {legacy_type}")
        attrs[match[0]] = typed(match[1], op.attrs[pir_name], f"attribute {pir_name}")
    for name, value in route.fixed.items():
        if callable(value):  # computed from the op: fixed={"infer_flags": lambda op, attrs: ...}
            value = value(op, attrs)
        attrs[name] = value if isinstance(value, tuple) else typed(proto.attrs[name], value, f"attribute {name}")
    if "is_test" in proto.attrs:  # an inference program (Lite's rnn kernel, for one, reads it)
        attrs["is_test"] = typed(proto.attrs["is_test"], True, "is_test")
    defaults = schema.legacy_defaults(legacy_type)
    for name, kind in proto.attrs.items():
        if name not in attrs and name in defaults:
            attrs[name] = typed(kind, defaults[name], f"default of {name}")
    missing = [n for n in proto.attrs if n not in attrs]
    if missing:
        raise TranslationError(f"legacy {legacy_type} needs attribute(s) {', '.join(missing)} that the PIR op "
                               "does not give")
    missing_inputs = [s.name for s in proto.inputs if not s.dispensable and not s.extra and s.name not in inputs]
    if missing_inputs:
        raise TranslationError(f"legacy {legacy_type} needs input(s) {', '.join(missing_inputs)}")

    outputs: Dict[str, list] = {}
    for k, pir_name in enumerate(op.output_names):
        slot = _match(pir_name, out_slots, route.outputs)
        if slot is None:
            raise TranslationError(f"result {pir_name} has no counterpart in legacy {legacy_type}")
        if op.outputs[k].elements is not None:
            if not slot.duplicable:
                raise TranslationError(f"result {pir_name} is a vector; legacy slot {slot.name} holds one tensor")
            outputs[slot.name] = b.vector_output(op, k)
        else:
            outputs[slot.name] = [b.output(op, k)]
    for slot in proto.outputs:
        if slot.name in outputs:
            continue
        if slot.name == "XShape":  # Lite's x86 passes crash on a reshape-like op without it
            source = b.values.get(op.inputs[0])
            outputs[slot.name] = [b.declare(b.fresh("xshape"), source.dtype if source else "float32",
                                            [0] + list(source.shape if source and source.shape else []))]
        elif not (slot.dispensable or slot.extra):
            outputs[slot.name] = [b.declare(b.fresh(f"{legacy_type}.{slot.name}"), None, [])]
    b.emit(legacy_type, inputs, outputs, attrs)
    return legacy_type


_INTEGER_ATTRS = (schema.ATTR_INT, schema.ATTR_INTS, schema.ATTR_LONG, schema.ATTR_LONGS)


def tensor_twins(legacy_type: str) -> set:
    """Names of the input slots of ``legacy_type`` that carry one of its attributes at run time."""
    proto = schema.legacy_op(legacy_type)
    twins = (schema.tensor_input(legacy_type, a) for a in (proto.attrs if proto else ()))
    return {t.name for t in twins if t is not None}


def const_or_tensor(b: Builder, op: PirOp, k: int, legacy_type: str, attr: str, inputs: dict, attrs: dict,
                    make) -> None:
    """Operand ``k`` of ``op`` as legacy attribute ``attr`` (``make`` types the value): its value when it is
    a constant, else the tensor input the legacy op reads it from at run time (``schema.tensor_input``, or
    ``schema.tensor_list_input`` for a list of values). An absent operand leaves ``attrs`` as it is."""
    if not b.has_input(op, k):
        return
    vid = op.inputs[k]
    if b.is_const(vid):
        attrs[attr] = make(b.consts[vid])
        return
    what = f"operand {op.input_names[k] if k < len(op.input_names) else k}"
    proto = schema.legacy_op(legacy_type)
    assert proto is not None, f"callers name a legacy op the installed Paddle registers, not {legacy_type}"
    integer = proto.attrs[attr] in _INTEGER_ATTRS
    # shapes, indices and counts go as int32, as legacy programs hold them (paddle.shape was int32 before
    # PIR) and as Paddle Lite's kernels read them
    members = b.vectors.get(vid)  # programs Paddle translated from legacy ones keep lists of values
    if members is not None and all(m in b.values and b.values[m].shape in ([], [1]) for m in members):
        slot = schema.tensor_list_input(legacy_type, attr)   # one value per entry
        if slot is None:
            raise TranslationError(f"{what} is a list computed at run time; legacy {legacy_type} takes it only "
                                   f"as the attribute {attr}")
        inputs[slot.name] = scalar_parts(b, members, "int32" if integer else None)
        return
    slot = schema.tensor_input(legacy_type, attr)
    source = b.values.get(vid)
    listed = schema.tensor_list_input(legacy_type, attr)
    if slot is None and listed is not None and members is None and source is not None \
            and source.shape is not None and len(source.shape) == 1 and source.shape[0] > 0:
        # one 1-D tensor of known length (a stack of run-time numbers) where the legacy op takes only one
        # tensor per entry (split's SectionsTensorList): cut it into its entries
        inputs[listed.name] = entries(b, vid, source.shape[0], "int32" if integer else None)
        return
    if slot is None:
        raise TranslationError(f"{what} is computed at run time; legacy {legacy_type} takes it only as the "
                               f"attribute {attr}")
    if members is not None:  # one tensor holding all the values (the legacy Shape input, translated by Paddle)
        if len(members) != 1:
            raise TranslationError(f"{what} is a list of {len(members)} tensors of several values each; legacy "
                                   f"{legacy_type} takes one tensor or one value per entry")
        vid = members[0]
    source = b.values.get(vid)
    if integer and source is not None and source.dtype == "int64":
        inputs[slot.name] = [b.cast(vid, "int32", f"{attr}_i32")]
    else:
        inputs[slot.name] = [b.name_of(vid)]


def entries(b: Builder, vid: int, count: int, dtype: Optional[str] = None) -> list:
    """The ``count`` entries of 1-D value ``vid`` as [1] tensors (in ``dtype`` if given), one slice each."""
    name = b.cast(vid, dtype, "entries") if dtype else b.name_of(vid)
    kind = dtype or b.values[vid].dtype
    parts = []
    for i in range(count):
        part = b.declare(b.fresh("entry"), kind, [1])
        b.emit("slice", {"Input": [name]}, {"Out": [part]},
               {"axes": INTS([0]), "starts": INTS([i]), "ends": INTS([i + 1]), "infer_flags": INTS([1]),
                "decrease_axis": INTS([])})
        parts.append(part)
    return parts


def scalar_parts(b: Builder, members, dtype: Optional[str] = None) -> list:
    """Each scalar value (0-D or one element) as a [1] tensor, in ``dtype`` if given: the form in which
    legacy programs pass lists of run-time numbers (shape lists, slice bounds). A reshape, not an unsqueeze:
    the zero-d pass later makes 0-D values [1], and a reshape to [1] means the same for both."""
    parts = []
    for m in members:
        value = b.values.get(m)
        name = b.cast(m, dtype, "scalar") if dtype and value is not None and value.dtype != dtype else b.name_of(m)
        kind = dtype or (value.dtype if value is not None else "float32")
        if value is not None and value.shape == [1]:
            parts.append(name)
            continue
        part = b.declare(b.fresh("scalar"), kind, [1])
        b.emit("reshape2", {"X": [name]}, {"Out": [part], "XShape": [b.declare(part + ".xshape", kind, [0])]},
               {"shape": INTS([1])})
        parts.append(part)
    return parts


def _operand_names(b: Builder, vid: int, slot: schema.Slot, what: str):
    members = b.vectors.get(vid)
    if members is not None:
        if not slot.duplicable:
            raise TranslationError(f"{what} is a vector; legacy slot {slot.name} takes one tensor")
        return [b.name_of(m) for m in members]
    return [b.name_of(vid)]
