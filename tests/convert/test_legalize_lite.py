"""Each legalization pass against the Paddle Lite crash it exists for: a small model Paddle 3.3.1 exports
crashes Lite (opt or the .nb at run time) without the pass, and matches Paddle Inference with it."""
from __future__ import annotations

import numpy as np
import pytest

from wherry import runtimes
from support.models import export_legal_model
from wherry.convert import golden, legalize, lite_export, source
from wherry.runtimes import parity
from wherry.runtimes.errors import NativeCrash

# model -> the pass it needs, and what the Lite crash says without it
CASES = [
    ("swish", "restore-attrs", "No attributes called beta"),
    ("reduce_any", "attr-widths", "required type is INTS"),
    ("instance_norm", "add-outputs", "is_have_output"),
    ("transformer_mask", "zero-d", "no valid out_shape"),
    ("lstm", "unpersist-empty", "has not initialized"),
    ("gru", "unpersist-empty", "has not initialized"),
    ("functional_layer_norm", "layer-norm-affine", "SIGSEGV"),
]


def _lite_outputs(model, params, out_nb, feeds):
    lite_export.export_nb(model, params, out_nb, ["x86"])
    with runtimes.open(str(out_nb), isolate=True) as session:
        return session.run(feeds)


@pytest.mark.parametrize("name,needed,crash", CASES, ids=[c[0] for c in CASES])
def test_pass_turns_a_lite_crash_into_parity(name, needed, crash, tmp_path):
    model = export_legal_model(name)
    params = model.with_suffix(".pdiparams")
    feeds = golden.random_inputs(source.read(model).inputs, {})
    reference = golden.reference_outputs(model, feeds)

    others = [p for p in legalize.PASSES if p != needed]
    without = legalize.legalize(model, params, tmp_path / "without", others)
    with pytest.raises(NativeCrash) as died:
        _lite_outputs(without[0], without[1], tmp_path / "without.nb", feeds)
    assert crash in str(died.value) or crash == died.value.signal_name

    legal_model, legal_params, changes = legalize.legalize(model, params, tmp_path / "with")
    assert any(c.startswith(needed + ":") for c in changes), changes
    outputs = _lite_outputs(legal_model, legal_params, tmp_path / "with.nb", feeds)
    outputs = dict(zip(reference, outputs.values()))
    results = parity.compare(reference, outputs)
    assert all(r.passed for r in results), [r.reason for r in results]
    assert not any(r.uninformative for r in results)


def test_restore_attrs_uses_paddles_default_and_lites_type(tmp_path):
    model = export_legal_model("swish")
    out, _, changes = legalize.legalize(model, model.with_suffix(".pdiparams"), tmp_path, ["restore-attrs"])
    swish = next(op for op in source.load_program_desc(out).blocks[0].ops if op.type == "swish")
    beta = next(a for a in swish.attrs if a.name == "beta")
    assert beta.f == 1.0 and beta.type == 1  # FLOAT, as Lite's activation parser reads it
    assert changes == ["restore-attrs: swish -> swish_0.tmp_0: restored attribute beta=1.0 (FLOAT)"]


def test_attr_widths_converts_int64_lists_lite_reads_as_int32(tmp_path):
    model = export_legal_model("reduce_any")
    before = next(op for op in source.load_program_desc(model).blocks[0].ops if op.type == "reduce_any")
    assert next(a for a in before.attrs if a.name == "dim").type == 11  # LONGS, as Paddle >= 2.6 writes it
    out, _, _ = legalize.legalize(model, model.with_suffix(".pdiparams"), tmp_path, ["attr-widths"])
    after = next(op for op in source.load_program_desc(out).blocks[0].ops if op.type == "reduce_any")
    dim = next(a for a in after.attrs if a.name == "dim")
    assert dim.type == 3 and list(dim.ints) == [1]  # INTS


def test_unpersist_empty_rewrites_the_parameter_file(tmp_path):
    from wherry.convert import params as params_io

    model = export_legal_model("lstm")
    out, out_params, changes = legalize.legalize(model, model.with_suffix(".pdiparams"), tmp_path, ["unpersist-empty"])
    assert len(changes) == 1 and "zero-size" in changes[0]
    names = legalize.persistable_names(source.load_program_desc(out))
    records = params_io.read(out_params, names)
    assert records and all(r.numel > 0 for r in records)
    assert out_params.stat().st_size < model.with_suffix(".pdiparams").stat().st_size + 1


def test_layer_norm_gets_identity_affine(tmp_path):
    from wherry.convert import params as params_io

    model = export_legal_model("functional_layer_norm")
    out, out_params, changes = legalize.legalize(model, model.with_suffix(".pdiparams"), tmp_path,
                                                 ["layer-norm-affine"])
    assert len(changes) == 2
    records = {r.name: r for r in params_io.read(out_params, legalize.persistable_names(source.load_program_desc(out)))}
    scale = next(r for n, r in records.items() if n.endswith("scale_identity"))
    data = np.frombuffer(scale.raw[-16 * 4:], dtype=np.float32)
    assert scale.dims == [16] and np.all(data == 1.0)


def test_every_pass_is_idempotent_on_the_legalization_models(tmp_path):
    for name, _, _ in CASES:
        model = export_legal_model(name)
        first, params, _ = legalize.legalize(model, model.with_suffix(".pdiparams"), tmp_path / name / "a")
        _, _, again = legalize.legalize(first, params, tmp_path / name / "b")
        assert again == [], (name, again)


def test_identity_adaptive_pool_becomes_a_1x1_pool_and_leaves_real_ones(tmp_path):
    """Only the adaptive pool to its input's own size changes (Lite ARM computes it as a global pool; the
    board test in test_lite_arm.py shows it); the real 4x4 -> 2x2 adaptive pool stays, and the repaired
    program still computes what the original does, in Paddle Inference and in Lite x86."""
    model = export_legal_model("identity_adaptive_pool")
    out, out_params, changes = legalize.legalize(model, model.with_suffix(".pdiparams"), tmp_path / "p",
                                                 ["identity-adaptive-pool"])
    assert len(changes) == 1 and "adaptive to [4, 4] from [4, 4]" in changes[0], changes
    pools = [{a.name: a for a in op.attrs} for op in source.load_program_desc(out).blocks[0].ops if op.type == "pool2d"]
    assert sorted((list(p["ksize"].ints), p["adaptive"].b) for p in pools) == [([1, 1], False), ([2, 2], True)]
    feeds = golden.random_inputs(source.read(model).inputs, {})
    reference = golden.reference_outputs(model, feeds)
    for outputs in (golden.reference_outputs(out, feeds), _lite_outputs(out, out_params, tmp_path / "x86.nb", feeds)):
        results = parity.compare(reference, dict(zip(reference, outputs.values())))
        assert all(r.passed and not r.uninformative for r in results), [r.reason for r in results]
    assert legalize.legalize(out, out_params, tmp_path / "again", ["identity-adaptive-pool"])[2] == []
