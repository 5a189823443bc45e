"""Legalization passes on real Paddle 3.3.1 exports, and the Lite crash they prevent."""
from __future__ import annotations

import pytest

from support.models import export_vision_model
from wherry.convert import legalize, lite_export, source
from wherry.runtimes.errors import NativeCrash


def _ops(model_file):
    return list(source.load_program_desc(model_file).blocks[0].ops)


def test_flatten_gets_xshape_and_relu6_gets_threshold(tmp_path):
    model = export_vision_model("mobilenet_v2", "legacy", 64)
    before = [op for op in _ops(model) if op.type == "relu6"]
    assert before and all(not any(a.name == "threshold" for a in op.attrs) for op in before)
    out_model, _, changes = legalize.legalize(model, model.with_suffix(".pdiparams"), tmp_path)
    ops = _ops(out_model)
    flatten = [op for op in ops if op.type == "flatten_contiguous_range"]
    assert flatten and all(any(o.parameter == "XShape" for o in op.outputs) for op in flatten)
    relu6 = [op for op in ops if op.type == "relu6"]
    assert all(next(a.f for a in op.attrs if a.name == "threshold") == 6.0 for op in relu6)
    assert sum("add-xshape" in c for c in changes) == len(flatten)
    assert sum("restore-attrs" in c for c in changes) == len(relu6)


def test_passes_are_idempotent(tmp_path):
    model = export_vision_model("mobilenet_v2", "legacy", 64)
    first, params, _ = legalize.legalize(model, model.with_suffix(".pdiparams"), tmp_path / "a")
    _, _, changes = legalize.legalize(first, params, tmp_path / "b")
    assert changes == []


def test_lite_x86_crash_is_typed_and_legalization_prevents_it(tmp_path):
    """docs/toolchain.md: opt segfaults on x86 for flatten without XShape; wherry survives and names the pass."""
    model = export_vision_model("mobilenet_v3_small", "legacy", 64)
    params = model.with_suffix(".pdiparams")
    with pytest.raises(NativeCrash) as crash:
        lite_export.export_nb(model, params, tmp_path / "raw.nb", ["x86"])
    assert crash.value.signal_name == "SIGSEGV"
    assert "variable_place_inference_pass" in crash.value.hint
    legal_model, legal_params, _ = legalize.legalize(model, params, tmp_path / "legal")
    result = lite_export.export_nb(legal_model, legal_params, tmp_path / "ok.x86.nb", ["x86"])
    assert result.nb_file.stat().st_size > 100_000
