"""The parity engine's metrics and verdicts."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from wherry.runtimes import parity
from wherry.runtimes.bundle import Tolerance


def _one(golden, actual, tol=None):
    return parity.compare({"y": golden}, {"y": actual}, {"y": tol or parity.default_tolerance("fp32")})[0]


def test_identical_outputs_pass_with_perfect_metrics():
    g = np.random.default_rng(0).standard_normal((4, 10)).astype("float32")
    r = _one(g, g.copy())
    assert r.passed and r.max_abs == 0 and r.cosine == pytest.approx(1.0) and r.snr_db == math.inf
    assert r.top1 == 1.0 and r.shape_match and r.dtype_match
    assert json.loads(json.dumps(r.to_json()))["snr_db"] == "inf"


def test_error_is_judged_against_the_outputs_own_scale():
    rng = np.random.default_rng(1)
    small = (rng.random((2, 100)) * 1e-3).astype("float32")   # probabilities ~1e-3
    big = (rng.standard_normal((2, 100)) * 100).astype("float32")  # logits ~100
    # The same relative error (5e-5 of the scale) passes for both at rtol 1e-4 ...
    assert _one(small, small + 5e-5 * np.abs(small).max()).passed
    assert _one(big, big + 5e-5 * np.abs(big).max()).passed
    # ... and an absolute error that is tiny for logits fails for probabilities.
    r = _one(small, small + 1e-3)
    assert not r.passed and "max abs error" in r.reason
    assert r.max_rel == pytest.approx(1e-3 / np.abs(small).max(), rel=1e-3)


def test_metrics_values():
    g = np.array([[1.0, 2.0, 3.0, 4.0]], "float32")
    a = np.array([[1.0, 2.0, 3.0, 4.5]], "float32")
    r = _one(g, a, Tolerance(rtol=1.0, min_cosine=0.0))
    assert r.max_abs == pytest.approx(0.5) and r.mean_abs == pytest.approx(0.125)
    assert r.scale == 4.0 and r.max_rel == pytest.approx(0.125)
    assert r.snr_db == pytest.approx(10 * math.log10(30 / 0.25))
    cos = float(np.dot(g.ravel(), a.ravel()) / np.linalg.norm(g) / np.linalg.norm(a))
    assert r.cosine == pytest.approx(cos)
    assert r.top1 == 1.0 and r.passed


def test_shape_dtype_nan_and_missing_fail():
    g = np.ones((2, 3), "float32") * np.arange(3)
    assert "shape" in _one(g, np.ones((3, 2), "float32")).reason
    assert "dtype" in _one(g, g.astype("int64")).reason
    bad = g.copy()
    bad[0, 1] = np.nan
    r = _one(g, bad)
    assert not r.passed and r.nan_count == 1 and "NaN/Inf" in r.reason
    missing = parity.compare({"y": g}, {}, {})[0]
    assert not missing.passed and "missing" in missing.reason


def test_cosine_and_top1_thresholds():
    g = np.array([[3.0, 1.0], [1.0, 3.0]], "float32")
    flipped = g[:, ::-1].copy()
    r = _one(g, flipped, Tolerance(rtol=10.0, min_cosine=0.0, min_top1=0.99))
    assert r.top1 == 0.0 and "top-1" in r.reason
    r = _one(g, flipped, Tolerance(rtol=10.0, min_cosine=0.9))
    assert "cosine" in r.reason


def test_near_constant_golden_is_flagged_uninformative():
    zeros = np.zeros((1, 8), "float32")
    r = _one(zeros, zeros)
    assert r.passed and r.uninformative and "uninformative" in r.reason
    r = _one(zeros, zeros + 1e-3)
    assert r.uninformative and not r.passed  # still judged by the error bound


def test_default_tolerances_by_precision():
    fp32, fp16, int8 = (parity.default_tolerance(p) for p in ("fp32", "fp16", "int8"))
    assert fp32.rtol < fp16.rtol < int8.rtol
    assert fp32.min_cosine > fp16.min_cosine > int8.min_cosine
    for p in ("int8-weight", "int16-weight"):
        assert parity.default_tolerance(p).rtol > 0
    fp32.rtol = 1.0  # a fresh copy each time
    assert parity.default_tolerance("fp32").rtol == 1e-4
    with pytest.raises(Exception, match="unknown precision"):
        parity.default_tolerance("int4")


def test_overrides_name_beats_star():
    base = parity.default_tolerance("fp32")
    tol = parity.apply_overrides(base, "logits", {"*": {"atol": 1.0, "rtol": 0.5}, "logits": {"atol": 2.0}})
    assert (tol.atol, tol.rtol, tol.min_cosine) == (2.0, 0.5, base.min_cosine)


def test_fp32_rounding_noise_rule_passes_one_element_slightly_over_the_bound():
    """A deep fp32 net can put one element just over 1e-4 of scale with cosine 1.0000000 (a real PP-OCR
    detector: 1.12e-4): the error's energy says it is rounding, so fp32's default passes it, and says why."""
    g = np.random.default_rng(5).standard_normal((1, 4096)).astype("float64")
    scale = np.abs(g).max()
    a = g.copy()
    a[0, 7] += 1.12e-4 * scale
    r = _one(g, a)
    assert r.passed and r.noise_rule and "rounding noise" in r.reason and r.snr_db > 80


def test_fp32_noise_rule_does_not_pass_widespread_or_large_errors():
    g = np.random.default_rng(6).standard_normal((1, 4096))
    scale = np.abs(g).max()
    spread = g + 3e-4 * scale * np.random.default_rng(7).choice([-1.0, 1.0], size=g.shape)  # every element off
    r = _one(g, spread)
    assert not r.passed and not r.noise_rule and r.snr_db < 80
    one_big = g.copy()
    one_big[0, 3] += 2e-3 * scale  # beyond noise_rtol: a concentrated error is a wrong op, not rounding
    assert not _one(g, one_big).passed


def test_noise_rule_is_fp32_only_and_recorded_in_the_tolerance():
    assert parity.default_tolerance("fp32").noise_rtol == 1e-3
    assert parity.default_tolerance("fp32").noise_min_snr_db == 80.0
    assert parity.default_tolerance("fp16").noise_rtol is None
    tol = Tolerance.from_json({"rtol": 1e-4, "noise_rtol": 1e-3, "noise_min_snr_db": 80.0, "future_field": 1})
    assert tol.noise_rtol == 1e-3


@pytest.mark.parametrize("overrides", [{"rtol": math.nan}, {"atol": math.nan}, {"atol": math.inf},
                                       {"min_cosine": -0.5}, {"*": {"rtol": math.nan}}])
def test_a_tolerance_override_that_is_no_finite_non_negative_number_is_refused(overrides):
    """`check --rtol nan` turned a failing artifact into a PASS (every comparison with NaN is false): an
    override follows the manifest's rule, a finite number >= 0 (issue 27, finding 11)."""
    with pytest.raises(parity.InputError, match="must be a finite number >= 0"):
        parity.normalize_overrides(overrides, ["y"])
    assert parity.normalize_overrides({"noise_min_snr_db": -3.0, "rtol": 0.0}, ["y"]) == \
        {"*": {"noise_min_snr_db": -3.0, "rtol": 0.0}}
