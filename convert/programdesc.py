"""A legacy ProgramDesc's attributes, read and written in one place.

framework.proto keeps an op attribute's value in the field its ``AttrType`` names: ``ATTR_FIELDS`` is
that correspondence (the proto's own enum and message field names), and the rest derives from it, so
no module guesses a value by trying fields one after another.
"""
from __future__ import annotations

from typing import Any, Dict

from wherry.runtimes.paddle_model import framework_proto

# framework.proto: AttrType name -> the OpDesc.Attr field holding a value of that type
ATTR_FIELDS: Dict[str, str] = {
    "INT": "i", "FLOAT": "f", "STRING": "s", "BOOLEAN": "b", "LONG": "l", "FLOAT64": "float64", "BLOCK": "block_idx",
    "INTS": "ints", "FLOATS": "floats", "STRINGS": "strings", "BOOLEANS": "bools", "LONGS": "longs",
    "FLOAT64S": "float64s", "BLOCKS": "blocks_idx",
}
REPEATED = frozenset(kind for kind in ATTR_FIELDS if kind.endswith("S"))   # INTS, ..., BLOCKS
FIELD_KINDS: Dict[str, str] = {field: kind for kind, field in ATTR_FIELDS.items()}   # "ints" -> "INTS"


def attr_kind(attr) -> str:
    """An attribute's AttrType name (INT, INTS, ...)."""
    return framework_proto().AttrType.Name(attr.type)


def attr_value(attr) -> Any:
    """An attribute's value as Python (a list for repeated types); None for types without a plain value."""
    kind = attr_kind(attr)
    if kind not in ATTR_FIELDS:
        return None
    value = getattr(attr, ATTR_FIELDS[kind])
    return list(value) if kind in REPEATED else value


def set_attr(attr, kind: str, value: Any) -> None:
    """Store ``value`` in ``attr`` as AttrType ``kind`` (INT, LONGS, ...), replacing what it held."""
    attr.type = getattr(framework_proto().AttrType, kind)
    field = ATTR_FIELDS[kind]
    if kind in REPEATED:
        attr.ClearField(field)
        getattr(attr, field).extend(value)
    else:
        setattr(attr, field, value)
