"""The registry of artifact exporters, keyed by format: what `--format` accepts and what a target profile's
`artifacts` may list.

The two formats every target knows, Paddle Lite `.nb` and ONNX, are built by the pipeline's own stages
(the golden run, legalization and quantization are shared by both, so they are not separate exporters).
Every other artifact kind is *derived from the bundle's ONNX* by one exporter module that follows the
protocol ``convert/edge_export.py`` drives (``FORMAT``, ``PRECISIONS``, ``TOOL``, ``export(...)``, and how
its artifact is checked: in its tool environment, on the emulated board, or only simulated), registered
here with one line (``convert/exporters/edge.py``):

    register(Exporter("openvino", ("fp32", "int8"), "OpenVINO IR (.xml + .bin), CPU", module=openvino_export))

Its format is a row of ``wherry.runtimes.vocabulary.FORMATS`` too (what runs it on a device). A requested
precision an exporter cannot build is said, never silently shipped under another name; a tool failure is
recorded as not built, like Lite's and paddle2onnx's.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from types import ModuleType
from typing import Dict, List, Optional, Sequence, Tuple

from wherry.runtimes.vocabulary import ARTIFACT_FORMATS, PRECISIONS


@dataclass(frozen=True)
class Exporter:
    format: str                          # the manifest's artifact format, also the --format name
    precisions: Tuple[str, ...]          # the precisions it can build
    summary: str                         # one line for --help and the docs
    # the exporter module (the protocol convert/edge_export.py drives); None: built by the pipeline's own stages
    module: Optional[ModuleType] = None


EXPORTERS: Dict[str, Exporter] = {}


def register(exporter: Exporter) -> Exporter:
    # a format the runtimes cannot open would be built and never checked: the vocabulary must know it first
    assert exporter.format in ARTIFACT_FORMATS, f"add {exporter.format!r} to wherry.runtimes.vocabulary.FORMATS"
    EXPORTERS[exporter.format] = exporter
    return exporter


register(Exporter("nb", tuple(PRECISIONS), "Paddle Lite optimized model"))
register(Exporter("onnx", tuple(PRECISIONS), "ONNX (paddle2onnx), any runtime"))

_LOADED = False


def _load_modules() -> None:
    """Import every exporter module of this package once: each registers itself."""
    global _LOADED
    if not _LOADED:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        _LOADED = True


def formats() -> List[str]:
    """Every artifact format wherry can build, the built-in ones first."""
    _load_modules()
    return list(EXPORTERS)


def derived(requested: Sequence[str]) -> List[Exporter]:
    """The exporters that build from the bundle's ONNX, among the requested formats, in registry order."""
    _load_modules()
    return [e for f, e in EXPORTERS.items() if f in requested and e.module is not None]
