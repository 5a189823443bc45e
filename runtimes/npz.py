"""Reading .npz data files safely and checking feeds against a model's inputs.

An .npz may come from anywhere (a user, a board, a download), so pickled
objects are never loaded: a pickle can run arbitrary code.
"""
from __future__ import annotations

import logging
import os
import struct
import zipfile
import zlib
from typing import Any, BinaryIO, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import InputError
from .specs import TensorSpec

log = logging.getLogger(__name__)


# Bounds for data files from anywhere: arrays of numeric kinds only, at most MAX_ARRAYS of them and
# MAX_NPZ_BYTES of array data in one file, checked against the file's own headers before any
# array is allocated (a small .npz can declare terabytes).
MAX_ARRAYS = 4096
MAX_NPZ_BYTES = 2 << 30
_NUMERIC_KINDS = "biuf"
_NPY_PREFIX = 12  # magic (6), version (2), header length (2 or 4)


def load_npz(path: Union[str, os.PathLike[str]], max_bytes: Optional[int] = None) -> Dict[str, NDArray[Any]]:
    """All arrays of an .npz file, loaded into memory; never unpickles, never exceeds ``max_bytes``."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise InputError(f"data file {path} does not exist", "pass the path of an .npz written by numpy.savez")
    with open(path, "rb") as fh:
        return read_npz(fh, path, max_bytes)


def read_npz(fileobj: BinaryIO, label: str = "data", max_bytes: Optional[int] = None) -> Dict[str, NDArray[Any]]:
    """The arrays of an .npz held by a binary file object (``label`` names it in messages)."""
    limit = MAX_NPZ_BYTES if max_bytes is None else max_bytes
    try:
        with zipfile.ZipFile(fileobj) as archive:
            members = archive.infolist()
            _check_members(members, label, limit)
            # One pass over the members (numpy's NpzFile looks each name up in a list: quadratic).
            return {info.filename[:-4]: _read_member(archive, info, label) for info in members}
    except InputError:
        raise
    except zipfile.BadZipFile as exc:
        if fileobj.seek(0) == 0 and fileobj.read(6) == b"\x93NUMPY":
            raise InputError(f"{label} holds a single array, not named arrays (.npz)",
                             "save it with numpy.savez(path, input_name=array)") from None
        raise InputError(f"{label} is not a readable .npz file ({exc})",
                         "the file is corrupt or truncated; write it again with numpy.savez") from None
    except (OSError, EOFError, ValueError, KeyError, SyntaxError, TypeError, OverflowError, RuntimeError,
            MemoryError, struct.error, zlib.error) as exc:
        raise InputError(f"{label} is not a readable .npz file ({exc.__class__.__name__}: {exc})",
                         "the file is corrupt or truncated; write it again with numpy.savez") from None


def _check_members(members: Sequence[zipfile.ZipInfo], label: str, limit: int) -> None:
    if len(members) > MAX_ARRAYS:
        raise InputError(f"{label} holds {len(members)} files; wherry reads at most {MAX_ARRAYS} arrays",
                         "save only the model's inputs or outputs: numpy.savez(path, name=array, ...)")
    names = [m.filename for m in members]
    odd = next((n for n in names if not n.endswith(".npy")), None)
    if odd is not None:
        raise InputError(f"{label} holds {odd!r}, which is not an array (.npy)", "write it with numpy.savez")
    if len(set(names)) != len(names):
        raise InputError(f"{label} names an array twice (damaged archive)", "write it again with numpy.savez")
    total = sum(m.file_size for m in members)
    if total > limit:
        raise InputError(f"{label} holds {total / 2**20:.0f} MiB of data; the limit here is {limit / 2**20:.0f} MiB",
                         "use smaller arrays (golden data only needs a few samples)")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> NDArray[Any]:
    """One array, after checking that its header agrees with its size (so no oversized allocation)."""
    name = info.filename[:-4]
    with archive.open(info) as fh:
        prefix = fh.read(_NPY_PREFIX)
        if len(prefix) < 10 or prefix[:6] != b"\x93NUMPY" or prefix[6] not in (1, 2, 3):
            raise InputError(f"array {name!r} in {label} is not in numpy's .npy format", "write it with numpy.savez")
        header_len = int.from_bytes(prefix[8:10] if prefix[6] == 1 else prefix[8:12], "little")
        if header_len > 65535:
            raise InputError(f"array {name!r} in {label} has a {header_len}-byte header (damaged)",
                             "write it again with numpy.savez")
        fh.seek(0)
        # public readers only (numpy 2 hides the private one); version 3 is only written for
        # structured dtypes with non-latin-1 field names, which are refused anyway
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        version = np.lib.format.read_magic(fh)  # type: ignore[no-untyped-call]  # numpy.lib.format is unannotated
        if version not in readers:
            raise InputError(f"array {name!r} in {label} uses .npy format version {version}, which wherry "
                             "does not read",
                             "write it with numpy.savez (plain numeric arrays)")
        shape, fortran, dtype = readers[version](fh)  # type: ignore[no-untyped-call]
        if dtype.hasobject:
            raise InputError(f"{label} holds pickled Python objects, which wherry never loads (unsafe)",
                             "save plain numeric arrays: numpy.savez(path, x=arr.astype('float32'))")
        if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
            raise InputError(f"array {name!r} in {label} has dtype {dtype}, not a number type",
                             "save numeric arrays (float, int, bool)")
        count = 1
        for dim in shape:
            count *= dim
        size = info.file_size - fh.tell()
        if any(d < 0 for d in shape) or count * dtype.itemsize != size:
            raise InputError(f"array {name!r} in {label} declares shape {list(shape)} of {dtype} but holds "
                             f"{size} bytes (damaged)", "write it again with numpy.savez")
        data = bytearray(size)  # writable, unlike bytes
        view, filled = memoryview(data), 0
        while filled < size:
            got = fh.readinto(view[filled:])  # type: ignore[attr-defined]  # a ZipExtFile
            if not got:
                raise EOFError("array data ends early")
            filled += got
    array = np.frombuffer(data, dtype=dtype, count=count)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


#: A sequence (LoD) input NAME is fed with its rows in NAME and the length of each sequence in
#: NAME + LENGTHS (e.g. words [9, 1] and words.lengths [4, 5]): in .npz files and in Session.run.
LENGTHS = ".lengths"


def lengths_key(name: str) -> str:
    return name + LENGTHS


def offsets(lengths: ArrayLike) -> List[int]:
    """Sequence lengths [4, 5] -> Paddle's LoD offsets [0, 4, 9]."""
    starts: List[int] = np.cumsum(np.asarray(lengths, dtype=np.int64)).astype(int).tolist()
    return [0] + starts


def sequence_lengths(feeds: Mapping[str, NDArray[Any]]) -> Dict[str, NDArray[Any]]:
    """input name -> lengths, for the inputs fed as sequences."""
    return {k[:-len(LENGTHS)]: v for k, v in feeds.items() if k.endswith(LENGTHS)}


_DTYPES: Dict[str, np.dtype[Any]] = {}


def _dtype(name: str) -> np.dtype[Any]:
    # Cached dtype objects: comparing dtypes is cheap, while str(dtype) on every call measurably
    # slowed the next inference (~60 us on mobilenet_v3_small; see benchmarks/bench_runtime.py).
    found = _DTYPES.get(name)
    if found is None:
        found = _DTYPES[name] = np.dtype(name)
    return found


def _fast_path(specs: List[TensorSpec], feeds: object, check_shapes: bool) -> Optional[Dict[str, NDArray[Any]]]:
    """The feeds in model order when everything is right, else None (then the slow path explains).

    Session.run calls this on every inference, so it avoids allocations: temporary
    objects (generators, flags) measurably slowed the following native call.
    """
    if type(feeds) is not dict or len(feeds) != len(specs):
        return None
    checked: Dict[str, NDArray[Any]] = {}
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
                   check_shapes: bool = True) -> Dict[str, NDArray[Any]]:
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


def _checked_lengths(spec: TensorSpec, value: NDArray[Any], lengths: object) -> Optional[NDArray[Any]]:
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
