"""Calibration and evaluation data: loaded and checked before any long work starts."""
from __future__ import annotations

import logging

from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from wherry.convert.quantize import tasks
from wherry.runtimes.errors import InputError
from wherry.runtimes.npz import LENGTHS, lengths_key, load_npz, offsets, sequence_lengths
from wherry.runtimes.preprocess import PreprocessSpec, image_files, load_folder
from wherry.runtimes.specs import TensorSpec

log = logging.getLogger(__name__)

MIN_CALIB_SAMPLES = 8     # fewer gives ranges from a handful of images: noisy int8 scales
MAX_CALIB_SAMPLES = 256   # more adds time, not accuracy, for MinMax ranges


def _samples(path: Path, specs: List[TensorSpec], arrays: Dict[str, np.ndarray], what: str) -> Dict[str, np.ndarray]:
    missing = [s.name for s in specs if s.name not in arrays]
    if missing:
        raise InputError(f"{what} {path} lacks input(s) {', '.join(missing)} (it has {', '.join(arrays) or 'nothing'})",
                         "save one array per model input, first axis = samples: numpy.savez(path, x=samples)")
    counts = set()
    out = {}
    for spec in specs:
        data = arrays[spec.name]
        if data.dtype.kind not in "fiub":
            raise InputError(f"{what} {path}: {spec.name} has dtype {data.dtype}", f"use {spec.dtype}")
        if np.dtype(spec.dtype).kind == "f" and data.dtype.kind != "f":
            raise InputError(f"{what} {path}: {spec.name} has dtype {data.dtype}, the model takes {spec.dtype}",
                             f"convert it: arr.astype('{spec.dtype}')")
        if spec.lod_level:
            padded, lengths = _sequences(path, spec, data, arrays.get(lengths_key(spec.name)), what)
            counts.add(len(lengths))
            out[spec.name], out[lengths_key(spec.name)] = padded.astype(spec.dtype, copy=False), lengths
            continue
        if spec.shape and spec.shape[0] is not None and spec.shape[0] > 1:
            # calibration feeds one sample at a time; a fixed batch of n > 1 would need grouped samples
            raise InputError(f"{spec.name} has a fixed batch of {spec.shape[0]}; wherry calibrates and evaluates "
                             "models whose batch is 1 or dynamic", "export the model with a dynamic batch (None)")
        sample_shape = (spec.shape[0] if spec.shape else None,) + tuple(data.shape[1:])
        if not spec.accepts_shape(sample_shape):
            raise InputError(f"{what} {path}: {spec.name} samples have shape {list(data.shape[1:])}, the model "
                             f"takes {spec.describe()}", "the first axis counts samples; the rest must fit the input")
        counts.add(len(data))
        out[spec.name] = data.astype(spec.dtype, copy=False)
    if len(counts) != 1:
        raise InputError(f"{what} {path}: inputs have different sample counts {sorted(counts)}",
                         "give every input the same number of samples")
    return out


def _sequences(path: Path, spec: TensorSpec, rows: np.ndarray, lengths, what: str) -> Tuple[np.ndarray, np.ndarray]:
    """A sequence (LoD) input's samples: one sequence each, given as in ``--inputs`` (NAME holds the rows of
    every sequence one after another, NAME.lengths the length of each). Returned padded to the longest,
    [samples, longest, *row shape], with the lengths [samples], so that every array's first axis counts
    samples (slicing and ``batches`` treat them alike); the padding repeats each sequence's last row (it
    stays inside the data's range) and is cut off again before Paddle is fed (``unpad``)."""
    key = lengths_key(spec.name)
    if lengths is None:
        raise InputError(f"{what} {path} lacks {key!r}: {spec.name!r} is a sequence (LoD) input and every "
                         "calibration sample needs its length",
                         f"save the rows of all sequences one after another as {spec.name!r} and one length per "
                         f"sequence (= per sample) as {key!r}: numpy.savez(path, {spec.name}=rows, "
                         f"**{{'{key}': lengths}})")
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu" or (lengths < 1).any():
        raise InputError(f"{what} {path}: {key!r} must be a 1-D array of positive integers, one length per "
                         f"sequence (got {lengths.dtype} of shape {list(lengths.shape)})",
                         "example: [4, 5, 2] for three samples of 4, 5 and 2 rows")
    if not spec.accepts_shape(rows.shape):
        raise InputError(f"{what} {path}: {spec.name} has shape {list(rows.shape)}, the model takes "
                         f"{spec.describe()} (the rows of every sequence, one after another)",
                         f"concatenate the sequences along the first axis and give their lengths as {key!r}")
    if int(lengths.sum()) != len(rows):
        raise InputError(f"{what} {path}: the lengths in {key!r} add up to {int(lengths.sum())}, but "
                         f"{spec.name!r} has {len(rows)} rows", "the lengths must add up to the input's first dimension")
    longest = int(lengths.max())
    padded = np.empty((len(lengths), longest, *rows.shape[1:]), rows.dtype)
    for i, (start, length) in enumerate(zip(offsets(lengths)[:-1], lengths.tolist())):
        padded[i, :length] = rows[start:start + length]
        padded[i, length:] = rows[start + length - 1]
    return padded, lengths.astype(np.int64)


def unpad(feeds: Dict[str, np.ndarray], index: int) -> Dict[str, np.ndarray]:
    """Sample ``index`` of checked calibration feeds as a model feed: a plain input as a batch of one, a
    sequence input as its rows with ``NAME.lengths`` = [its length] (see ``_sequences``)."""
    lengths = sequence_lengths(feeds)
    sample = {}
    for name, array in feeds.items():
        if name.endswith(LENGTHS) and name[:-len(LENGTHS)] in feeds:
            continue
        if name in lengths:
            length = int(lengths[name][index])
            sample[name], sample[lengths_key(name)] = array[index, :length], np.array([length], np.int64)
        else:
            sample[name] = array[index:index + 1]
    return sample


def load_calibration(path, input_specs: List[TensorSpec], preprocess=None) -> Dict[str, np.ndarray]:
    """Calibration samples keyed by input name, first axis = samples (at most MAX_CALIB_SAMPLES are used).

    ``path`` is an .npz (one array per input) or a folder of images for a model with one image input;
    images go through ``preprocess`` (a runtimes.preprocess.PreprocessSpec, its dict, or None for a spec
    derived from the input shape: 0..1 scaling, RGB, the input's layout and size).
    Everything is checked here, before any long work starts.
    """
    feeds = load_samples(path, input_specs, preprocess)
    count = len(next(iter(feeds.values())))
    if count > MAX_CALIB_SAMPLES:
        log.info("using the first %d of %d calibration samples", MAX_CALIB_SAMPLES, count)
    return {k: v[:MAX_CALIB_SAMPLES] for k, v in feeds.items()}


def load_samples(path, input_specs: List[TensorSpec], preprocess=None, extra: int = 0) -> Dict[str, np.ndarray]:
    """Every sample of the calibration data, checked (an image folder: at most MAX_CALIB_SAMPLES + ``extra``
    images are decoded; the extra ones can serve as golden inputs calibration does not use)."""
    path = Path(path)
    if path.is_dir():
        feeds = ({input_specs[0].name: _images(path, input_specs, preprocess, MAX_CALIB_SAMPLES + extra)}
                 if len(input_specs) == 1 else None)
        if feeds is None:
            raise InputError(f"an image folder can feed one input; the model has {len(input_specs)} "
                             f"({', '.join(s.name for s in input_specs)})",
                             "pass an .npz with one array per input instead")
        feeds = _samples(path, input_specs, feeds, "calibration images")
    else:
        feeds = _samples(path, input_specs, load_npz(path), "calibration data")
    count = len(next(iter(feeds.values())))
    if count < MIN_CALIB_SAMPLES:
        raise InputError(f"calibration data {path} has {count} sample(s); int8 needs at least {MIN_CALIB_SAMPLES}",
                         "pass 50-200 representative inputs")
    return feeds


def resolve_preprocess(preprocess, spec: TensorSpec) -> PreprocessSpec:
    """The spec to use for an image input: given (object, dict or JSON text) or derived from its shape."""
    if preprocess is None:
        return PreprocessSpec.for_input(spec.shape)
    if isinstance(preprocess, PreprocessSpec):
        return preprocess
    return PreprocessSpec.from_json(preprocess)


def preprocess_record(path, input_specs: List[TensorSpec], preprocess=None) -> Optional[dict]:
    """What the manifest's ``preprocess`` field should hold for this calibration data: the spec images
    went through (so a device can feed real images the same way), or None for an .npz."""
    if path is None or not Path(path).is_dir() or len(input_specs) != 1:
        return None
    spec = resolve_preprocess(preprocess, input_specs[0])
    spec.input = input_specs[0].name
    return spec.to_json()


def _images(folder: Path, input_specs: List[TensorSpec], preprocess, limit: int = MAX_CALIB_SAMPLES) -> np.ndarray:
    spec = resolve_preprocess(preprocess, input_specs[0])
    files = image_files(folder)  # refuses an empty folder before anything is decoded
    if len(files) < MIN_CALIB_SAMPLES:
        raise InputError(f"image folder {folder} has {len(files)} image(s); int8 needs at least {MIN_CALIB_SAMPLES}",
                         "pass 50-200 representative images")
    return load_folder(folder, spec, limit=limit)


def load_eval(path, input_specs: List[TensorSpec]) -> Tuple[Dict[str, np.ndarray], tasks.Task]:
    """Labelled data: arrays keyed by input name plus the task its ground truth names (``tasks.from_arrays``:
    ``labels``, ``texts`` + ``charset``, ``boxes`` or ``masks``)."""
    path = Path(path)
    sequences = [s.name for s in input_specs if s.lod_level]
    if sequences:   # task metrics batch plain samples; sequence inputs would need their lengths carried too
        raise InputError(f"--eval does not take models with sequence (LoD) inputs yet ({', '.join(sequences)})",
                         "leave --eval out: the artifacts are still judged against the golden outputs")
    arrays = load_npz(path)
    truth = {k: arrays.pop(k) for k in (*tasks.TRUTH_KEYS, "charset", "iou") if k in arrays}
    feeds = _samples(path, input_specs, arrays, "evaluation data")
    count = len(next(iter(feeds.values())))
    return feeds, tasks.from_arrays(truth, count, str(path))


def batches(feeds: Dict[str, np.ndarray], size: int):
    count = len(next(iter(feeds.values())))
    for start in range(0, count, size):
        yield {k: v[start:start + size] for k, v in feeds.items()}
