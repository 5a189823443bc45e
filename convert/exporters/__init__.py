"""The registry of artifact exporters, keyed by format: what `--format` accepts and what a target profile's
`artifacts` may list.

The two formats every target knows, Paddle Lite `.nb` and ONNX, are built by the pipeline's own stages
(the golden run, legalization and quantization are shared by both, so they are not separate exporters).
Every other artifact kind is *derived from the bundle's ONNX*: one module in this package that declares
an :class:`Exporter` with ``register`` and builds its artifacts from an :class:`ExportContext` (the fp32
`model.onnx` in the stage, the calibration data, the requested precisions). The pipeline runs it after
the ONNX and quantized artifacts exist and before the bundle is verified, so a new runtime or
accelerator plugs in without touching the pipeline:

    register(Exporter("openvino", ("fp32", "int8"), "OpenVINO IR (.xml + .bin), CPU", build=build_ir))

A requested precision an exporter cannot build is recorded as not built (``ExportContext.not_built``),
never silently dropped; a tool failure goes through ``ExportContext.failures`` like Lite's and
paddle2onnx's.
"""
from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from wherry.runtimes.bundle import Artifact
from wherry.runtimes.vocabulary import ARTIFACT_FORMATS, PRECISIONS


@dataclass
class ExportContext:
    """What a derived exporter gets from the pipeline for one target's bundle."""

    profile: object                      # the target profile (wherry.targets.Profile)
    stage: Path                          # the bundle being built: write artifacts here, by file name
    work: Path                           # scratch space of this conversion (deleted afterwards)
    precisions: List[str]                # the precisions requested for this target
    onnx: Optional[Path]                 # the bundle's fp32 model.onnx (None when it could not be built)
    calib: Optional[Dict[str, object]]   # calibration arrays by input name (--calib), for the tool's own PTQ
    input_specs: Sequence[object]        # the model's inputs and outputs (wherry.runtimes.specs.TensorSpec)
    output_specs: Sequence[object]
    failures: object                     # wherry.convert.failures.Failures: attempt() / add()
    timeline: object                     # wherry.convert.progress.Timeline: step(...) shows progress
    artifact: Callable[..., Artifact]    # artifact(file, format, precision, arch, notes=[]) -> a manifest record
    notes: List[str] = field(default_factory=list)   # report notes (the quantization section)


@dataclass(frozen=True)
class Exporter:
    format: str                          # the manifest's artifact format, also the --format name
    precisions: Tuple[str, ...]          # the precisions it can build
    summary: str                         # one line for --help and the docs
    # builds the artifacts of ctx.precisions it supports; None: built by the pipeline's own stages (nb, onnx)
    build: Optional[Callable[[ExportContext], List[Artifact]]] = None


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
    return [e for f, e in EXPORTERS.items() if f in requested and e.build is not None]
