"""Bring every source format to one legacy ProgramDesc + combined params pair.

Paddle Lite and paddle2onnx 1.3.1 both read only legacy programs with a
combined parameter file, so:

* legacy        -> used as is
* paddle1 dir   -> parameter files concatenated into one combined file
* PIR .json     -> translated by convert.pir into a legacy program
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from wherry.convert.source import ModelInfo, persistable_names

log = logging.getLogger(__name__)


@dataclass
class LegacyModel:
    model_file: Optional[Path]    # None: a PIR program without a legacy form (pir_route.UntranslatedPir)
    params_file: Optional[Path]
    translated: bool = False
    notes: List[str] = field(default_factory=list)


def to_legacy(info: ModelInfo, work_dir: Path) -> LegacyModel:
    files = info.files
    if files.format == "legacy" or (files.format == "paddle1" and files.params_file is not None):
        return LegacyModel(files.model_file, files.params_file)
    if files.format == "paddle1":
        return _combine_paddle1_params(files.model_file, work_dir / "combined")
    from wherry.convert import pir  # the translator is only needed for PIR sources

    out = work_dir / "translated"
    out.mkdir(parents=True, exist_ok=True)
    result = pir.translate(files.model_file, files.params_file, out)
    notes = [f"translated PIR program to legacy ProgramDesc ({sum(result.ops.values())} ops)"] + list(result.notes)
    return LegacyModel(Path(result.model_file), Path(result.params_file), translated=True, notes=notes)


def _combine_paddle1_params(model_file: Path, out_dir: Path) -> LegacyModel:
    # A combined params file is the per-variable serializations (the exact bytes a
    # 1.x per-file save writes) concatenated in sorted variable-name order, which
    # is the order Paddle Inference, Lite and paddle2onnx read them back in.
    names = persistable_names(model_file)
    out_dir.mkdir(parents=True, exist_ok=True)
    params = out_dir / "model.pdiparams"
    with open(params, "wb") as combined:
        for name in names:
            combined.write((model_file.parent / name).read_bytes())
    out_model = out_dir / "model.pdmodel"
    out_model.write_bytes(model_file.read_bytes())
    note = f"combined {len(names)} Paddle 1.x parameter files into one"
    log.info(note)
    return LegacyModel(out_model, params, notes=[note])
