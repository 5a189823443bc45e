"""Golden data: sample inputs and the ORIGINAL model's outputs on them (Paddle Inference).

Every artifact in a bundle is judged against these outputs, so they come from
the untouched source model, never from a legalized or translated copy.
"""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from wherry import runtimes
from wherry.runtimes.errors import InputError, PaddleOpMissing
from wherry.runtimes.npz import lengths_key, load_npz, validate_feeds
from wherry.runtimes.specs import TensorSpec

log = logging.getLogger(__name__)

DEFAULT_BATCH = 1
MAX_RANDOM_BYTES = 256 << 20  # random golden inputs; a bundle carries them, so they stay a sample


def parse_shape_options(options: Sequence[str]) -> Dict[str, Tuple[int, ...]]:
    """``["x=1,3,224,224"]`` -> ``{"x": (1, 3, 224, 224)}``."""
    shapes = {}
    for option in options or ():
        name, sep, dims = option.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            shapes[name] = tuple(int(d) for d in dims.split(","))
            if any(d <= 0 for d in shapes[name]):
                raise ValueError
        except ValueError:
            raise InputError(f"--shape {option!r} is not NAME=D1,D2,... with positive dims",
                             "example: --shape x=1,3,224,224") from None
    return shapes


def parse_shape_sets(options: Sequence[str]) -> List[Dict[str, Tuple[int, ...]]]:
    """``--shape`` options as golden sets: an input named again starts the next set, e.g.
    ``x=1,3,64,64 x=1,3,32,48`` -> ``[{"x": (1,3,64,64)}, {"x": (1,3,32,48)}]``; an input named fewer
    times than another keeps its last shape in the later sets."""
    sets: List[Dict[str, Tuple[int, ...]]] = []
    for option in options or ():
        ((name, dims),) = parse_shape_options([option]).items()
        index = next((i for i, chosen in enumerate(sets) if name not in chosen), len(sets))
        if index == len(sets):
            sets.append(dict(sets[-1]) if sets else {})
        for later in sets[index:]:
            later[name] = dims
    return sets


def _dynamic_dims(spec: TensorSpec) -> List[int]:
    """Positions of a spec's dynamic dims other than the leading (batch) one: spatial, sequence, ..."""
    return [i for i, d in enumerate(spec.shape) if d is None and i > 0]


def _smaller(dim: int) -> int:
    """Half a dynamic dim, kept a multiple of 32 when it is one (a CNN's usual total stride)."""
    if dim >= 64 and dim % 32 == 0:
        return max(32, dim // 2 // 32 * 32)
    return max(1, dim // 2)


def default_other_shapes(specs: List[TensorSpec], shapes: Dict[str, Tuple[int, ...]]) -> List[Dict[str, Tuple[int, ...]]]:
    """One more golden set for a model with dynamic non-batch dims: each such dim halved (e.g. half the
    width and height), so every artifact is proven at two shapes, not one. None for fixed-shape models."""
    other = {}
    for spec in specs:
        dims = _dynamic_dims(spec)
        if not dims or spec.lod_level or spec.name not in shapes:
            continue
        shape = list(shapes[spec.name])
        for i in dims:
            shape[i] = _smaller(shape[i])
        if tuple(shape) != tuple(shapes[spec.name]):
            other[spec.name] = tuple(shape)
    return [{**shapes, **other}] if other else []


def concrete_shape(spec: TensorSpec, shapes: Dict[str, Tuple[int, ...]]) -> Tuple[int, ...]:
    if spec.name in shapes:
        shape = shapes[spec.name]
        if not spec.accepts_shape(shape):
            raise InputError(f"--shape {spec.name}={','.join(map(str, shape))} does not fit the model's "
                             f"input {spec.describe()}", "keep the fixed dims as the model declares them")
        return shape
    dims = list(spec.shape)
    if dims and dims[0] is None:
        dims[0] = DEFAULT_BATCH  # a dynamic leading dim is the batch
    if any(d is None for d in dims):
        example = ",".join("N" if d is None else str(d) for d in dims)
        raise InputError(f"input {spec.describe()} has dynamic dimensions wherry cannot guess",
                         f"pass --shape {spec.name}={example} with N replaced by a real size")
    return tuple(d for d in dims if d is not None)  # none is None any more: said for mypy


def random_inputs(specs: List[TensorSpec], shapes: Dict[str, Tuple[int, ...]], seed: int = 0,
                  lengths: Optional[Dict[str, List[int]]] = None):
    """Seeded random feeds: standard normal floats (the scale of normalized images), small ints."""
    unknown = sorted(set(shapes) - {s.name for s in specs})
    if unknown:
        raise InputError(f"--shape names unknown input(s) {', '.join(unknown)}",
                         f"the model's inputs are {', '.join(s.name for s in specs)}")
    lengths = lengths or {}
    shapes = sequence_inputs(specs, lengths, shapes) if any(s.lod_level for s in specs) else shapes
    planned = [(spec, concrete_shape(spec, shapes)) for spec in specs]
    size = sum(math.prod(shape) * np.dtype(spec.dtype).itemsize for spec, shape in planned)
    if size > MAX_RANDOM_BYTES:  # measured before allocating: a typo in --shape must not exhaust memory
        shown = ", ".join(f"{spec.name}={','.join(map(str, shape))}" for spec, shape in planned)
        raise InputError(f"random golden inputs of {shown} would take {_human(size)}; wherry makes at most "
                         f"{_human(MAX_RANDOM_BYTES)} of them", "golden data only needs a sample: pass a smaller "
                         "--shape (e.g. batch 1), or real data with --inputs")
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec, shape in planned:
        dtype = np.dtype(spec.dtype)
        if spec.lod_level and spec.name in lengths:
            feeds[lengths_key(spec.name)] = np.asarray(lengths[spec.name], np.int64)
        if dtype.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(dtype)
        elif dtype.kind == "b":
            feeds[spec.name] = rng.integers(0, 2, size=shape).astype(bool)
        else:
            raise InputError(f"cannot make random data for {spec.describe()}", "pass real inputs with --inputs in.npz")
    return feeds


def image_inputs(folder: Path, specs: List[TensorSpec], preprocess):
    """Real images through a preprocessing spec (the one recorded in the manifest for devices)."""
    from wherry.runtimes.preprocess import load_folder

    from wherry.convert.quantize.calibration import resolve_preprocess

    if len(specs) != 1:
        raise InputError(f"--images feeds one image input; the model has {len(specs)} inputs",
                         "pass real data for every input with --inputs in.npz")
    spec = resolve_preprocess(preprocess, specs[0])
    feeds = {specs[0].name: load_folder(folder, spec, limit=MAX_IMAGES)}
    validate_feeds(specs, feeds)
    return feeds, spec


MAX_IMAGES = 16  # golden data is for checking, not evaluation: a few real images are enough


def user_inputs(path: Path, specs: List[TensorSpec], lengths: Optional[Dict[str, List[int]]] = None):
    """The user's npz (with NAME.lengths for sequence inputs; ``lengths`` from --lod take precedence)."""
    feeds = load_npz(path)
    feeds.update({lengths_key(name): np.asarray(value, np.int64) for name, value in (lengths or {}).items()})
    checked = validate_feeds(specs, {k: v for k, v in feeds.items() if k in _feed_keys(specs)})
    for spec in specs:
        value = checked[spec.name]
        # such golden data checks nothing: every artifact would be compared on nothing or on NaN
        if value.size == 0:
            raise InputError(f"--inputs array {spec.name!r} is empty (shape {list(value.shape)})",
                             "pass at least one real sample per input")
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise InputError(f"--inputs array {spec.name!r} holds NaN or Inf values",
                             "pass finite sample data (e.g. real images, normalized)")
    return checked


def _feed_keys(specs: List[TensorSpec]) -> set:
    return {s.name for s in specs} | {lengths_key(s.name) for s in specs}


def parse_lod_options(options: Sequence[str]) -> Dict[str, List[int]]:
    """``["words=4,5"]`` -> ``{"words": [4, 5]}`` (sequence lengths of a LoD input)."""
    lengths = {}
    for option in options or ():
        name, sep, values = option.partition("=")
        try:
            if not sep or not name:
                raise ValueError
            lengths[name] = [int(v) for v in values.split(",")]
            if any(v < 0 for v in lengths[name]):
                raise ValueError
        except ValueError:
            raise InputError(f"--lod {option!r} is not NAME=L1,L2,... with non-negative sequence lengths",
                             "example: --lod words=4,5 (two sequences of 4 and 5 rows)") from None
    return lengths


def sequence_inputs(specs: List[TensorSpec], lengths: Dict[str, List[int]], shapes: Dict[str, Tuple[int, ...]]):
    """--shape entries for sequence inputs: rows = the sum of their --lod lengths; checks every one has lengths."""
    unknown = sorted(set(lengths) - {s.name for s in specs if s.lod_level})
    if unknown:
        raise InputError(f"--lod names {', '.join(unknown)}, which is not a sequence (LoD) input of the model",
                         "sequence inputs: " + (", ".join(s.name for s in specs if s.lod_level) or "none"))
    shapes = dict(shapes)
    for spec in specs:
        if not spec.lod_level:
            continue
        if spec.name not in lengths:
            raise InputError(f"input {spec.describe()} is a sequence input: random golden data needs its "
                             "sequence lengths", f"pass --lod {spec.name}=4,5 (or real data with --inputs, with "
                                                  f"'{lengths_key(spec.name)}' in the npz)")
        rest = [1 if d is None else d for d in spec.shape[1:]]
        shapes[spec.name] = (int(sum(lengths[spec.name])), *rest)
    return shapes


def _human(size: int) -> str:
    return f"{size / 2**30:.1f} GiB" if size >= 2**30 else f"{size / 2**20:.0f} MiB"


def reference_outputs(model_path: Path, feeds: dict) -> Dict[str, np.ndarray]:
    """Run the original model with Paddle Inference (in a child process: it can abort too)."""
    return timed_reference_outputs(model_path, feeds)[0]


def timed_reference_outputs(model_path: Path, feeds: dict) -> Tuple[Dict[str, np.ndarray], float, str]:
    """``reference_outputs``, the seconds the run itself took (not the child's start, Paddle's import
    or the model's load): the measure of the model's cost that check's time limit is derived from, and the
    version of the Paddle that ran it: the installed one, or Paddle 2.6.2 for a Paddle 1.x model with an op
    the installed Paddle dropped (``legacy_paddle``)."""
    try:
        with runtimes.open(str(model_path), backend="paddle", isolate=True) as session:
            start = time.perf_counter()
            outputs = session.run(feeds)
            return outputs, time.perf_counter() - start, str(session.version)
    except PaddleOpMissing as missing:
        from wherry.convert import legacy_paddle

        return legacy_paddle.reference_outputs(model_path, feeds, missing)


def degenerate_outputs(outputs: Dict[str, np.ndarray]) -> List[str]:
    """Warnings for near-constant goldens, on which any comparison says little."""
    warnings = []
    for name, value in outputs.items():
        if value.size == 0 or value.dtype.kind not in "fc":
            continue
        scale = float(np.max(np.abs(value)))
        spread = float(np.max(value) - np.min(value))
        if scale < 1e-6 or spread <= 1e-6 * max(scale, 1e-30):
            warnings.append(f"golden output {name!r} is nearly constant (max |x| = {scale:.3g}, "
                            f"range = {spread:.3g}): parity on it is uninformative; pass real data with --inputs")
    return warnings


def golden_origin(inputs_path: Optional[Path], images: Optional[Path] = None, calib: bool = False) -> str:
    return "images" if images else ("user" if inputs_path else ("calib" if calib else "random"))


GOLDEN_FROM_CALIB = 8        # golden samples taken from --calib data when no --inputs/--images are given
MIN_CALIB_AFTER_HOLDOUT = 32  # hold golden samples out of calibration only when this many calibrate


def from_calibration(samples: Dict[str, np.ndarray], specs: List[TensorSpec], label: str, max_calib: int):
    """Golden inputs taken from the calibration data: ``(golden feeds, calibration feeds, description)``.

    Random N(0, 1) golden inputs judge a quantized artifact on data its activation ranges were never
    calibrated for (the digits CNN, calibrated on pixels in [0, 1], "failed" int8 on them with max abs
    error 30.8; on real digits it passes). Samples the calibration does not use are the honest choice:
    those past ``max_calib``, else the last few held out of calibration when enough remain, else (a
    small calibration set) the first few, which calibration uses as well - said in the description.
    """
    total = len(next(iter(samples.values())))
    # a model with a fixed batch of 1 takes one sample per run (calibration.py refuses larger fixed batches)
    count = 1 if any(s.shape and s.shape[0] == 1 for s in specs) else GOLDEN_FROM_CALIB
    count = min(count, total)
    if total - count >= max_calib:
        golden = {k: v[-count:] for k, v in samples.items()}
        calib = {k: v[:max_calib] for k, v in samples.items()}
        text = f"{count} sample(s) of {label} that calibration does not use (it uses the first {max_calib})"
    elif total - count >= MIN_CALIB_AFTER_HOLDOUT:
        golden = {k: v[-count:] for k, v in samples.items()}
        calib = {k: v[:-count] for k, v in samples.items()}
        text = f"{count} sample(s) held out of {label} (calibration uses the other {total - count})"
    else:
        golden = {k: v[:count] for k, v in samples.items()}
        calib = {k: v[:max_calib] for k, v in samples.items()}
        text = (f"the first {count} sample(s) of {label}, also used for calibration ({total} samples are too few "
                f"to hold any out; give more than {MIN_CALIB_AFTER_HOLDOUT + count} or real data with --inputs)")
    return {k: np.ascontiguousarray(v) for k, v in golden.items()}, calib, text


RANDOM_GOLDEN_WARNING = ("golden inputs are seeded random N(0, 1) data, not real inputs: the verdict of a quantized "
                         "artifact ({precisions}) on them says little (its ranges are not made for such data)")
RANDOM_GOLDEN_HINT = "pass real samples with --inputs in.npz or --images DIR (or --calib data, which golden inputs are then taken from)"


def outside_calibration(golden_feeds: Dict[str, np.ndarray], calib: Dict[str, np.ndarray], margin: float = 0.1):
    """Golden inputs that lie outside the calibration data's range, one text per input (empty: none).

    int8 activation ranges come from the calibration data; a golden input well beyond them (more than
    ``margin`` of the calibration range on either side) tests the quantized model where it clips."""
    found = []
    for name, value in golden_feeds.items():
        ref = calib.get(name)
        if ref is None or value.dtype.kind != "f" or ref.size == 0 or value.size == 0:
            continue
        lo, hi = float(ref.min()), float(ref.max())
        slack = margin * max(hi - lo, 1e-12)
        outside = float(np.mean((value < lo - slack) | (value > hi + slack)))
        if outside > 0:
            found.append(f"{name}: golden {float(value.min()):.3g}..{float(value.max()):.3g}, calibration "
                         f"{lo:.3g}..{hi:.3g} ({outside:.0%} of golden values outside)")
    return found
