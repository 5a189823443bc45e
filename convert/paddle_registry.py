"""Paddle's op registry (each op's input/output slots and attribute defaults), cached per Paddle version.

Legalization asks Paddle what an op defines (which outputs, which attribute defaults) for every op of
every legacy model. Asking needs ``paddle.base.core``, and importing paddle costs 1.5-2.5 s in each
process that converts. The answers depend only on the installed Paddle, so they are read once (all ops,
~50 ms once paddle is imported) and kept in the user cache as JSON, keyed by the paddlepaddle version;
later conversions read the file (~10 ms) and never import paddle in the main process.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, TypedDict

log = logging.getLogger(__name__)

FORMAT = 2   # bump when the file's layout changes (2: outputs flagged intermediate)


class OpEntry(TypedDict):
    """One op's definition as the cache file keeps it (``registry``)."""

    inputs: List[str]                   # input slot names
    outputs: List[str]                  # output slot names
    intermediate: List[str]             # output slots internal to the op
    defaults: Optional[Dict[str, Any]]  # attribute -> default value (None: the op has no attribute checker)
    extra: Optional[Dict[str, Any]]     # the "extra" attributes' defaults, likewise


def cache_file() -> Optional[Path]:
    try:
        version = metadata.version("paddlepaddle")
    except metadata.PackageNotFoundError:   # a source build or another distribution name: no safe key
        return None
    from wherry.targets.cache import cache_root

    return cache_root() / "paddle-registry" / f"paddlepaddle-{version}.v{FORMAT}.json"


@lru_cache(maxsize=1)
def registry() -> Dict[str, OpEntry]:
    """op type -> {"inputs": [...], "outputs": [...], "intermediate": [...], "defaults": {...} | None,
    "extra": {...} | None}. ``intermediate`` are the output slots Paddle declares as internal to the op (XShape,
    dropout's Mask, batch_norm's saved statistics): kernels need not write them at inference."""
    file = cache_file()
    if file is not None:
        try:
            return json.loads(file.read_text())
        except (OSError, ValueError):
            pass   # absent, or a torn/foreign file: read Paddle again and rewrite it
    table = _read_from_paddle()
    if file is not None:
        _write_atomically(file, json.dumps(table))
    return table


def _read_from_paddle() -> Dict[str, OpEntry]:
    from wherry.runtimes.paddle_model import framework_proto

    from .paddle_mode import import_paddle

    import_paddle()
    from paddle.base import core

    proto_module = framework_proto()
    table: Dict[str, OpEntry] = {}
    for raw in core.get_all_op_protos():
        proto = proto_module.OpProto.FromString(raw)
        table[proto.type] = {"inputs": [s.name for s in proto.inputs],
                             "outputs": [s.name for s in proto.outputs],
                             "intermediate": [s.name for s in proto.outputs if s.intermediate],
                             "defaults": _attrs(lambda: core.get_op_attrs_default_value(proto.type.encode())),
                             "extra": _attrs(lambda: core.get_op_extra_attrs(proto.type))}
    json.dumps(table)   # values Paddle returns are plain Python; fail here, not on a later read
    return table


def _attrs(read: Callable[[], Any]) -> Optional[Dict[str, Any]]:
    """What ``read`` returns as a dict (Paddle's attribute defaults of an op), None for an op without an
    attribute checker."""
    try:
        return dict(read())
    except (RuntimeError, ValueError):
        return None


def _write_atomically(file: Path, text: str) -> None:
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{file.name}.", dir=file.parent)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, file)   # two conversions writing at once: each rename is whole, the last one wins
    except OSError as exc:   # a read-only cache only costs the import next time
        log.debug("could not cache Paddle's op registry in %s: %s", file, exc)


def op(op_type: str) -> Optional[OpEntry]:
    return registry().get(op_type)
