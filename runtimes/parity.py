"""The parity engine: compare an artifact's outputs with the golden outputs.

Errors are judged against the golden output's own scale (max |golden|), so a
tensor of logits around 10 and one of probabilities around 1e-3 are treated
fairly: an output passes when

    max_abs <= atol + rtol * scale   and   cosine >= min_cosine
    (and top-1 agreement >= min_top1 for class-score outputs, when set)

A near-constant golden output (e.g. all zeros after a ReLU) says little about
parity: it is flagged ``uninformative`` and judged on the error bound only.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import List, Mapping, Optional

import numpy as np

from .bundle import PRECISIONS, Tolerance
from .errors import WherryError

# Defaults per artifact precision. fp32 conversions match Paddle to ~1e-6 (FACTS.md);
# fp16 keeps ~3 significant digits; quantized models are judged mostly by direction
# (cosine) because per-element errors of int8 are large by design.
_DEFAULTS = {
    "fp32": Tolerance(rtol=1e-4, atol=0.0, min_cosine=0.9999),
    "fp16": Tolerance(rtol=1e-2, atol=0.0, min_cosine=0.999),
    "int8": Tolerance(rtol=0.25, atol=0.0, min_cosine=0.98),
    "int8-weight": Tolerance(rtol=0.1, atol=0.0, min_cosine=0.995),
    "int16-weight": Tolerance(rtol=5e-3, atol=0.0, min_cosine=0.9999),
}
_UNINFORMATIVE_SPREAD = 1e-6


def default_tolerance(precision: str) -> Tolerance:
    """A fresh Tolerance with the defaults for an artifact precision."""
    if precision not in _DEFAULTS:
        raise WherryError(f"unknown precision {precision!r}", f"choose one of {', '.join(PRECISIONS)}")
    return Tolerance(**asdict(_DEFAULTS[precision]))


def apply_overrides(base: Tolerance, name: str, overrides: Optional[Mapping[str, Mapping[str, float]]]) -> Tolerance:
    """``overrides`` maps an output name (or "*" for all) to Tolerance fields; a name beats "*"."""
    merged = asdict(base)
    for key in ("*", name):
        merged.update((overrides or {}).get(key) or {})
    return Tolerance(**merged)


@dataclass
class OutputParity:
    name: str
    verdict: str = "fail"            # pass | fail
    reason: str = ""
    shape_match: bool = False
    dtype_match: bool = False
    golden_shape: List[int] = field(default_factory=list)
    actual_shape: Optional[List[int]] = None
    golden_dtype: str = ""
    actual_dtype: Optional[str] = None
    nan_count: int = 0               # in the actual output
    inf_count: int = 0
    max_abs: Optional[float] = None
    max_rel: Optional[float] = None  # max_abs / scale
    mean_abs: Optional[float] = None
    cosine: Optional[float] = None
    snr_db: Optional[float] = None   # inf when identical
    top1: Optional[float] = None     # fraction of rows whose argmax agrees (class-score outputs)
    scale: float = 0.0               # max |golden|
    limit: Optional[float] = None    # atol + rtol * scale
    uninformative: bool = False
    tolerance: Tolerance = field(default_factory=Tolerance)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def to_json(self) -> dict:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = str(value)  # JSON has no inf/nan: "inf"
        return data


def _looks_like_scores(golden: np.ndarray) -> bool:
    return golden.ndim == 2 and golden.shape[1] >= 2 and golden.dtype.kind == "f"


def compare_one(name: str, golden: np.ndarray, actual: Optional[np.ndarray], tol: Tolerance) -> OutputParity:
    golden = np.asarray(golden)
    res = OutputParity(name=name, golden_shape=list(golden.shape), golden_dtype=str(golden.dtype), tolerance=tol)
    if actual is None:
        res.reason = "output missing from the artifact's results"
        return res
    actual = np.asarray(actual)
    res.actual_shape, res.actual_dtype = list(actual.shape), str(actual.dtype)
    res.shape_match = golden.shape == actual.shape
    res.dtype_match = golden.dtype == actual.dtype
    numeric = golden.dtype.kind in "biuf" and actual.dtype.kind in "biuf"
    if not numeric:
        res.reason = f"cannot compare dtypes {golden.dtype} and {actual.dtype}"
        return res
    a = actual.astype(np.float64)
    g = golden.astype(np.float64)
    res.nan_count, res.inf_count = int(np.isnan(a).sum()), int(np.isinf(a).sum())
    if not res.shape_match:
        res.reason = f"shape {list(actual.shape)} != golden {list(golden.shape)}"
        return res
    if golden.dtype.kind != actual.dtype.kind and not {golden.dtype.kind, actual.dtype.kind} <= {"i", "u"}:
        res.reason = f"dtype {actual.dtype} != golden {golden.dtype}"
        return res
    finite_g = np.isfinite(g)
    bad = ~np.isfinite(a) & finite_g
    mask = finite_g & np.isfinite(a)
    gm, am = g[mask], a[mask]
    res.scale = float(np.max(np.abs(gm))) if gm.size else 0.0
    diff = np.abs(am - gm)
    res.max_abs = float(diff.max()) if diff.size else 0.0
    res.mean_abs = float(diff.mean()) if diff.size else 0.0
    res.max_rel = res.max_abs / res.scale if res.scale > 0 else (0.0 if res.max_abs == 0 else math.inf)
    gn, an = float(np.linalg.norm(gm)), float(np.linalg.norm(am))
    if gn == 0.0 and an == 0.0:
        res.cosine = 1.0
    elif gn == 0.0 or an == 0.0:
        res.cosine = 0.0
    else:
        res.cosine = float(np.dot(gm, am) / (gn * an))
    noise = float(np.sum((am - gm) ** 2))
    signal_power = float(np.sum(gm ** 2))
    res.snr_db = math.inf if noise == 0 else (10 * math.log10(signal_power / noise) if signal_power > 0 else -math.inf)
    if _looks_like_scores(golden) and golden.shape[0] > 0:
        res.top1 = float(np.mean(np.argmax(g, axis=1) == np.argmax(a, axis=1)))
    spread = float(gm.max() - gm.min()) if gm.size else 0.0
    res.uninformative = res.scale < 1e-6 or spread <= _UNINFORMATIVE_SPREAD * res.scale
    res.limit = tol.atol + tol.rtol * res.scale

    failures = []
    if bad.any():
        failures.append(f"{int(bad.sum())} NaN/Inf value(s) where the golden output is finite")
    if res.max_abs > res.limit:
        failures.append(f"max abs error {res.max_abs:.3g} > {res.limit:.3g} (atol {tol.atol:g} + rtol {tol.rtol:g}"
                        f" x scale {res.scale:.3g})")
    if not res.uninformative and res.cosine < tol.min_cosine:
        failures.append(f"cosine {res.cosine:.6f} < {tol.min_cosine}")
    if tol.min_top1 is not None and res.top1 is not None and res.top1 < tol.min_top1:
        failures.append(f"top-1 agreement {res.top1:.3f} < {tol.min_top1}")
    if failures:
        res.reason = "; ".join(failures)
        return res
    res.verdict = "pass"
    res.reason = "uninformative: golden output is nearly constant" if res.uninformative else ""
    return res


def compare(golden: Mapping[str, np.ndarray], actual: Mapping[str, np.ndarray],
            tolerances: Optional[Mapping[str, Tolerance]] = None) -> List[OutputParity]:
    """One OutputParity per golden output, in the golden's order."""
    tolerances = tolerances or {}
    return [compare_one(name, golden[name], actual.get(name), tolerances.get(name) or default_tolerance("fp32"))
            for name in golden]
