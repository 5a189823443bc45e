"""The parity engine: compare an artifact's outputs with the golden outputs.

Errors are judged against the golden output's own scale (max |golden|), so a
tensor of logits around 10 and one of probabilities around 1e-3 are treated
fairly: an output passes when

    max_abs <= atol + rtol * scale   and   cosine >= min_cosine
    (and top-1 agreement >= min_top1 for class-score outputs, when set)

fp32 and the rounding-noise rule. Two correct fp32 implementations of a deep net differ by
rounding: kernels sum in different orders and fuse differently, and the differences grow with
depth. On most outputs that stays ~1e-6 of scale, but a deep net with a saturating head can
put one element at ~1e-4 (a real PP-OCR detector: 1.12e-4 of scale, cosine 1.0000000). A
bound on the single worst element cannot tell that from a wrong op; the error's energy can.
So fp32 passes when max_abs <= 1e-4 x scale, or when max_abs <= 1e-3 x scale AND the SNR is
at least 80 dB (error energy 1e-8 of the signal's: an RMS error of 1e-4 of the RMS signal).
A wrong op (bad padding, a missing activation, fp16 somewhere) either exceeds 1e-3 of scale
or moves enough energy to fall below 80 dB. The rule is the same for every model, recorded
with each artifact's tolerance in the manifest, and a pass under it is reported as such.

A near-constant golden output (e.g. all zeros after a ReLU) says little about
parity: it is flagged ``uninformative`` and judged on the error bound only.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

import numpy as np
from numpy.typing import NDArray

from .bundle import PRECISIONS, Tolerance
from .vocabulary import PRECISIONS as PRECISION_TABLE
from .errors import InputError, WherryError

# Defaults per artifact precision: the vocabulary's table (why each is what it is is said there).
DEFAULTS = {p.name: Tolerance(rtol=p.rtol, atol=0.0, min_cosine=p.min_cosine, noise_rtol=p.noise_rtol,
                              noise_min_snr_db=p.noise_min_snr_db) for p in PRECISION_TABLE.values()}
_UNINFORMATIVE_SPREAD = 1e-6

# Detection outputs (NMS rows) match when class agrees and boxes overlap at least this much; quantized
# artifacts move boxes more. Boxes and scores are then judged with the precision's rtol.
DETECTION_MATCH_IOU = {p.name: p.detection_iou for p in PRECISION_TABLE.values()}


def default_tolerance(precision: str) -> Tolerance:
    """A fresh Tolerance with the defaults for an artifact precision."""
    if precision not in DEFAULTS:
        raise WherryError(f"unknown precision {precision!r}", f"choose one of {', '.join(PRECISIONS)}")
    return Tolerance(**asdict(DEFAULTS[precision]))


_TOLERANCE_FIELDS = tuple(f for f in Tolerance.__dataclass_fields__)


def normalize_overrides(overrides: object, outputs: List[str]) -> Dict[str, Dict[str, Any]]:
    """Accept ``{"rtol": 1e-3}`` (all outputs), ``{"*": {...}}`` or ``{"logits": {...}}`` and return
    the per-output form; an unknown field or output name, or a non-number, is an InputError."""
    if overrides is None:
        return {}
    hint = ('examples: {"rtol": 1e-3} for every output, {"logits": {"rtol": 1e-3}} for one; '
            f"fields: {', '.join(_TOLERANCE_FIELDS)}; outputs: {', '.join(outputs)}")
    if not isinstance(overrides, Mapping):
        raise InputError(f"overrides must be a mapping, not {type(overrides).__name__}", hint)
    flat = {k: v for k, v in overrides.items() if k in _TOLERANCE_FIELDS}
    nested = {k: v for k, v in overrides.items() if k not in _TOLERANCE_FIELDS}
    result: Dict[str, Dict[str, Any]] = {"*": dict(flat)} if flat else {}
    for name, fields in nested.items():
        if name != "*" and name not in outputs:
            raise InputError(f"tolerance override for {name!r}: the model has no such output", hint)
        if not isinstance(fields, Mapping):
            raise InputError(f"tolerance override for {name!r} must map fields to numbers, not {fields!r}", hint)
        result.setdefault(name, {}).update(fields)
    for name, fields in result.items():
        for key, value in fields.items():
            if key not in _TOLERANCE_FIELDS:
                raise InputError(f"unknown tolerance field {key!r} (for {name!r})", hint)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise InputError(f"tolerance {key} for {name!r} must be a number, not {value!r}", hint)
            # the manifest's rule (bundle._number): a NaN tolerance compared false, and so passed every output
            if value is not None and not (math.isfinite(value) and (value >= 0 or key == "noise_min_snr_db")):
                raise InputError(f"tolerance {key} for {name!r} must be a finite number"
                                 f"{'' if key == 'noise_min_snr_db' else ' >= 0'}, not {value!r}", hint)
    return result


def apply_overrides(base: Tolerance, name: str, overrides: Optional[Mapping[str, Mapping[str, float]]]) -> Tolerance:
    """``overrides`` maps an output name (or "*" for all) to Tolerance fields; a name beats "*"."""
    merged = asdict(base)
    for key in ("*", name):
        merged.update((overrides or {}).get(key) or {})
    return Tolerance(**merged)


@dataclass
class OutputParity:
    name: str
    verdict: str = "failed"          # passed | failed (the same words as a check report)
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
    noise_rule: bool = False         # passed only under the rounding-noise rule (see the module doc)
    uninformative: bool = False
    tolerance: Tolerance = field(default_factory=Tolerance)

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    def to_json(self) -> Dict[str, Any]:
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, float) and not math.isfinite(value):
                data[key] = str(value)  # JSON has no inf/nan: "inf"
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "OutputParity":
        """The inverse of to_json (a verdict another device reported)."""
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        for key in ("snr_db", "max_abs", "max_rel", "mean_abs", "cosine"):
            if isinstance(values.get(key), str):
                values[key] = float(values[key])   # "inf" / "nan"
        values["tolerance"] = Tolerance(**data.get("tolerance", {}))
        return cls(**values)


def _looks_like_scores(golden: NDArray[Any]) -> bool:
    return golden.ndim == 2 and golden.shape[1] >= 2 and golden.dtype.kind == "f"


def compare_one(name: str, golden: NDArray[Any], actual: Optional[NDArray[Any]], tol: Tolerance) -> OutputParity:
    golden = np.asarray(golden)
    res = OutputParity(name=name, golden_shape=list(golden.shape), golden_dtype=str(golden.dtype), tolerance=tol)
    if actual is None:
        res.reason = "output missing from the artifact's results"
        return res
    actual = np.asarray(actual)
    res.actual_shape, res.actual_dtype = list(actual.shape), str(actual.dtype)
    if golden.size == 1 and actual.size == 1 and golden.ndim == 0:
        actual = actual.reshape(())  # Lite has no 0-D tensors: the same single value comes back as [1]
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
    if not finite_g.any():
        # an empty or all-NaN/Inf golden output would pass with nothing compared
        res.reason = "golden output is empty" if g.size == 0 else "golden output has no finite value"
        res.reason += ": nothing to compare (damaged golden data, or a model that computes nothing useful)"
        return res
    # where the golden output is NaN or Inf, the artifact must give the same NaN or Inf
    bad = (~np.isfinite(a) & finite_g) | (~finite_g & ~((np.isnan(g) & np.isnan(a)) | (g == a)))
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
        failures.append(f"{int(bad.sum())} value(s) where exactly one of the artifact and the golden output is "
                        "NaN/Inf (or their Inf signs differ)")
    if res.max_abs > res.limit and _rounding_noise(res, tol):
        res.noise_rule = True
    elif res.max_abs > res.limit:
        failures.append(f"max abs error {res.max_abs:.3g} > {res.limit:.3g} (atol {tol.atol:g} + rtol {tol.rtol:g}"
                        f" x scale {res.scale:.3g})")
    if not res.uninformative and res.cosine < tol.min_cosine:
        failures.append(f"cosine {res.cosine:.6f} < {tol.min_cosine}")
    if tol.min_top1 is not None and res.top1 is not None and res.top1 < tol.min_top1:
        failures.append(f"top-1 agreement {res.top1:.3f} < {tol.min_top1}")
    if failures:
        res.reason = "; ".join(failures)
        return res
    res.verdict = "passed"
    res.reason = "uninformative: golden output is nearly constant" if res.uninformative else ""
    if res.noise_rule:
        res.reason = (f"max abs error {res.max_abs:.3g} > {res.limit:.3g} (rtol {tol.rtol:g} x scale) but within "
                      f"noise_rtol {tol.noise_rtol:g} x scale with SNR {res.snr_db:.1f} dB >= "
                      f"{tol.noise_min_snr_db:g}: rounding noise")
    return res


def _rounding_noise(res: OutputParity, tol: Tolerance) -> bool:
    """The error exceeds the strict bound but is spread like fp rounding (see the module doc)."""
    noise_rtol, min_snr_db, snr_db = tol.noise_rtol, tol.noise_min_snr_db, res.snr_db
    if noise_rtol is None or min_snr_db is None or snr_db is None or res.max_abs is None:
        return False
    return res.max_abs <= tol.atol + noise_rtol * res.scale and snr_db >= min_snr_db


# Rows of NMS outputs (multiclass_nms*, matrix_nms): [class, score, x1, y1, x2, y2].
_CLASS, _SCORE, _BOX = 0, 1, slice(2, 6)


def _area(b: NDArray[Any]) -> NDArray[Any]:
    """Areas of [x1, y1, x2, y2] boxes (empty boxes: 0)."""
    area: NDArray[Any] = np.clip(b[..., 2] - b[..., 0], 0, None) * np.clip(b[..., 3] - b[..., 1], 0, None)
    return area


def _iou(box: NDArray[Any], boxes: NDArray[Any]) -> NDArray[Any]:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = _area(box) + _area(boxes) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def match_detections(golden: NDArray[Any], actual: NDArray[Any],
                     min_iou: float) -> Tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """Pair each golden detection (highest score first) with the unmatched actual detection of the same
    class that overlaps it most, if IoU >= min_iou. Returns (order of actual rows aligned to golden rows,
    golden rows without a match, actual rows without a match)."""
    order = np.full(len(golden), -1)
    free = np.ones(len(actual), bool)
    for g in np.argsort(-golden[:, _SCORE], kind="stable"):
        same = np.flatnonzero(free & (actual[:, _CLASS] == golden[g, _CLASS]))
        if not same.size:
            continue
        overlap = _iou(golden[g, _BOX], actual[same][:, _BOX])
        best = int(np.argmax(overlap))
        if overlap[best] >= min_iou:
            order[g] = same[best]
            free[same[best]] = False
    return order, np.flatnonzero(order < 0), np.flatnonzero(free)


def compare_detections(name: str, golden: NDArray[Any], actual: Optional[NDArray[Any]], tol: Tolerance) -> OutputParity:
    """An NMS output is a set: its row order and (near the score threshold) its row count may differ between
    correct runtimes. Rows are matched by class and IoU >= ``tol.match_iou``; every golden detection must find
    one and vice versa; then the aligned rows are judged like any output (boxes against rtol x scale, and
    scores, which live in [0, 1], against rtol)."""
    plain = Tolerance(**{**asdict(tol), "match_iou": None})
    original = np.asarray(golden)
    if actual is None or np.asarray(actual).ndim != 2 or original.ndim != 2 or original.shape[1] < 6 \
            or np.asarray(actual).shape[1] != original.shape[1]:
        return compare_one(name, original, actual, plain)
    golden = original.astype(np.float64)
    actual64 = np.asarray(actual, np.float64)
    assert tol.match_iou is not None, "compare() sends only outputs with a match_iou here"
    order, lost, extra = match_detections(golden, actual64, tol.match_iou)
    if lost.size or extra.size:
        res = compare_one(name, golden[:0], np.asarray(actual)[:0], plain)
        res.golden_shape, res.actual_shape = list(golden.shape), list(np.asarray(actual).shape)
        res.verdict = "failed"
        res.reason = (f"detections differ: {lost.size} of {len(golden)} golden detection(s) have no match of the same "
                      f"class with IoU >= {tol.match_iou}, {extra.size} of {len(actual64)} detection(s) are extra")
        return res
    aligned = np.asarray(actual)[order]
    res = compare_one(name, original, aligned, plain)
    score_err = float(np.abs(aligned[:, _SCORE] - golden[:, _SCORE]).max()) if len(golden) else 0.0
    note = f"compared as {len(golden)} detection(s) matched by class and IoU >= {tol.match_iou}"
    if res.passed and score_err > tol.atol + tol.rtol:
        res.verdict = "failed"
        res.reason = f"{note}; score error {score_err:.3g} > {tol.atol + tol.rtol:g}"
    else:
        res.reason = f"{note}; " + res.reason if res.reason else note
    return res


def compare(golden: Mapping[str, NDArray[Any]], actual: Mapping[str, NDArray[Any]],
            tolerances: Optional[Mapping[str, Tolerance]] = None) -> List[OutputParity]:
    """One OutputParity per golden output, in the golden's order."""
    tolerances = tolerances or {}
    results = []
    for name in golden:
        tol = tolerances.get(name) or default_tolerance("fp32")
        judge = compare_detections if tol.match_iou is not None else compare_one
        results.append(judge(name, golden[name], actual.get(name), tol))
    return results
