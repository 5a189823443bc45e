"""Reading .npz data files safely and checking feeds against a model's inputs.

An .npz may come from anywhere (a user, a board, a download), so pickled
objects are never loaded: a pickle can run arbitrary code.
"""
from __future__ import annotations

import logging
import os
import zipfile
from typing import Dict, List, Mapping

import numpy as np

from .errors import InputError
from .specs import TensorSpec

log = logging.getLogger(__name__)


def load_npz(path: os.PathLike) -> Dict[str, np.ndarray]:
    """All arrays of an .npz file, loaded into memory; never unpickles."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"data file {path} does not exist", "pass the path of an .npz written by numpy.savez")
    arrays = {}
    try:
        data = np.load(path, allow_pickle=False)
        if not hasattr(data, "files"):  # a .npy: one unnamed array
            raise InputError(f"{path} holds a single array, not named arrays (.npz)",
                             "save it with numpy.savez(path, input_name=array)")
        with data:
            for name in data.files:
                arrays[name] = data[name]
    except InputError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise InputError(f"{path} holds pickled Python objects, which wherry never loads (unsafe)",
                             "save plain numeric arrays: numpy.savez(path, x=arr.astype('float32'))") from None
        raise InputError(f"{path} is not a valid .npz file ({exc})", "write it again with numpy.savez") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise InputError(f"{path} is not a readable .npz file ({exc.__class__.__name__}: {exc})",
                         "the file is corrupt or truncated; write it again with numpy.savez") from None
    return arrays


#: A sequence (LoD) input NAME is fed with its rows in NAME and the length of each sequence in
#: NAME + LENGTHS (e.g. words [9, 1] and words.lengths [4, 5]): in .npz files and in Session.run.
LENGTHS = ".lengths"


def lengths_key(name: str) -> str:
    return name + LENGTHS


def offsets(lengths) -> List[int]:
    """Sequence lengths [4, 5] -> Paddle's LoD offsets [0, 4, 9]."""
    return [0] + np.cumsum(np.asarray(lengths, dtype=np.int64)).astype(int).tolist()


def sequence_lengths(feeds: Mapping[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """input name -> lengths, for the inputs fed as sequences."""
    return {k[:-len(LENGTHS)]: v for k, v in feeds.items() if k.endswith(LENGTHS)}


_DTYPES: Dict[str, np.dtype] = {}


def _dtype(name: str) -> np.dtype:
    # Cached dtype objects: comparing dtypes is cheap, while str(dtype) on every call measurably
    # slowed the next inference (~60 us on mobilenet_v3_small; see benchmarks/bench_runtime.py).
    found = _DTYPES.get(name)
    if found is None:
        found = _DTYPES[name] = np.dtype(name)
    return found


def _fast_path(specs: List[TensorSpec], feeds, check_shapes: bool):
    """The feeds in model order when everything is right, else None (then the slow path explains).

    Session.run calls this on every inference, so it avoids allocations: temporary
    objects (generators, flags) measurably slowed the following native call.
    """
    if type(feeds) is not dict or len(feeds) != len(specs):
        return None
    checked = {}
    for spec in specs:
        if spec.lod_level:
            return None
        value = feeds.get(spec.name)
        if type(value) is not np.ndarray or not value.data.c_contiguous:
            return None
        if check_shapes:
            if value.dtype != _dtype(spec.dtype):
                return None
            shape = value.shape
            want = spec.shape
            if len(shape) != len(want):
                return None
            for w, g in zip(want, shape):
                if w is not None and w != g:
                    return None
        checked[spec.name] = value
    return checked


def validate_feeds(specs: List[TensorSpec], feeds: Mapping[str, object],
                   check_shapes: bool = True) -> Dict[str, np.ndarray]:
    """Check names, dtypes and shapes before anything reaches native code.

    Returns the feeds in the model's input order as C-contiguous arrays (native
    libraries read raw memory and would see a strided view's wrong layout).
    """
    fast = _fast_path(specs, feeds, check_shapes)
    if fast is not None:
        return fast
    if not isinstance(feeds, Mapping):
        raise InputError(f"feeds must be a dict of input name -> numpy array, not {type(feeds).__name__}",
                         "example: session.run({'x': array})")
    wanted = [s.name for s in specs]
    missing = [n for n in wanted if n not in feeds]
    unknown = [n for n in feeds if n not in wanted and not (n.endswith(LENGTHS) and n[:-len(LENGTHS)] in wanted)]
    if missing or unknown:
        parts = []
        if missing:
            parts.append("missing " + ", ".join(repr(n) for n in missing))
        if unknown:
            parts.append("unknown " + ", ".join(repr(n) for n in unknown))
        raise InputError(f"feeds do not match the model's inputs: {'; '.join(parts)}",
                         "the model's inputs are " + ", ".join(s.describe() for s in specs))
    checked = {}
    for spec in specs:
        value = feeds[spec.name]
        if not isinstance(value, np.ndarray):
            if isinstance(value, (list, tuple, int, float, np.generic)):
                raise InputError(f"input {spec.name!r} is a {type(value).__name__}, not a numpy array",
                                 f"pass numpy.asarray(value, dtype='{spec.dtype}')")
            raise InputError(f"input {spec.name!r} is a {type(value).__name__}, not a numpy array",
                             "convert it with numpy.asarray first")
        if value.dtype.kind == "O":
            raise InputError(f"input {spec.name!r} is an object array", f"pass a numeric {spec.dtype} array")
        if check_shapes and value.dtype != _dtype(spec.dtype):
            raise InputError(f"input {spec.name!r} has dtype {value.dtype}, the model expects {spec.dtype}",
                             f"cast it: x.astype('{spec.dtype}')")
        if check_shapes and not spec.accepts_shape(value.shape):
            raise InputError(f"input {spec.name!r} has shape {list(value.shape)}, the model expects {spec.describe()}",
                             "resize or reshape the data to the model's input shape (? marks a free dimension)")
        checked[spec.name] = value if value.flags.c_contiguous else np.ascontiguousarray(value)
        lengths = _checked_lengths(spec, value, feeds.get(lengths_key(spec.name)))
        if lengths is not None:
            checked[lengths_key(spec.name)] = lengths
    return checked


def _checked_lengths(spec: TensorSpec, value: np.ndarray, lengths):
    """The sequence lengths of a LoD input as int64, checked against its rows; None for a plain input."""
    key = lengths_key(spec.name)
    if lengths is None:
        if spec.lod_level:
            raise InputError(f"input {spec.name!r} is a sequence (LoD) input: its rows are the concatenated "
                             "sequences of a batch, and Paddle needs the length of each",
                             f"give them as {key!r} in the inputs .npz (e.g. numpy.savez(f, {spec.name}=ids, "
                             f"**{{'{key}': [4, 5]}})) or on the command line: --lod {spec.name}=4,5")
        return None
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu" or (lengths < 0).any():
        raise InputError(f"{key!r} must be a 1-D array of non-negative integers (one length per sequence)",
                         "example: [4, 5] for two sequences of 4 and 5 rows")
    rows = value.shape[0] if value.ndim else 0
    if int(lengths.sum()) != rows:
        raise InputError(f"the sequence lengths {key}={lengths.tolist()} add up to {int(lengths.sum())}, but input "
                         f"{spec.name!r} has {rows} rows", "the lengths must add up to the input's first dimension")
    return lengths.astype(np.int64)
