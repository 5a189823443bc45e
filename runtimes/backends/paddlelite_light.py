"""Paddle Lite's ARM light runtime built by wherry (``wherry targets build-lite``), through its
small C interface (libwherry_lite.so) loaded with ctypes.

ctypes rather than a Python extension: the runtime then holds no Python-version-specific code, so
one build serves every CPython on the board, and a board needs nothing beyond numpy and the
runtime folder. The folder is found, in this order, at ``WHERRY_LITE_RUNTIME=/path/to/folder`` or
as the installed ``wherry_lite_runtime`` package (the wheel); its runtime.json says which Lite
revision and which machine it was built for, so a runtime for another CPU is never loaded.

Arrays cross the boundary by copy: inputs into Lite's own buffers, outputs out of them (Lite
reuses its output buffers on the next run).
"""
from __future__ import annotations

import ctypes
import importlib.util
import json
import logging
import os
import platform
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np
from numpy.typing import NDArray

from ..errors import BackendUnavailable, BundleError
from ..npz import lengths_key, offsets
from ..specs import TensorSpec
from .base import Backend

log = logging.getLogger(__name__)

PACKAGE = "wherry_lite_runtime"
ENV = "WHERRY_LITE_RUNTIME"

# Paddle Lite's PrecisionType values (paddle_place.h) <-> numpy dtypes.
_PRECISION_DTYPE = {1: np.float32, 2: np.int8, 3: np.int32, 5: np.float16, 6: np.bool_, 7: np.int64,
                    8: np.int16, 9: np.uint8, 10: np.float64}
_DTYPE_PRECISION = {np.dtype(t): p for p, t in _PRECISION_DTYPE.items() if p != 5}
_MAX_RANK = 16
#: C functions added with sequence (LoD) support; a runtime folder built before lacks them.
_SINCE_LOD = ("wherry_lite_set_input_lod", "wherry_lite_output_lod")


def locate() -> Optional[Path]:
    """The runtime folder, or None. Never loads native code."""
    env = os.environ.get(ENV)
    if env:
        return Path(env).expanduser()
    try:
        spec = importlib.util.find_spec(PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def runtime_info() -> Optional[Dict[str, Any]]:
    """runtime.json of the runtime folder when there is one built for this machine, else None."""
    folder = locate()
    if folder is None:
        return None
    try:
        info = json.loads((folder / "runtime.json").read_text())
    except (OSError, ValueError):
        log.warning("%s has no readable runtime.json: not a wherry Lite runtime folder", folder)
        return None
    if platform.machine() not in info.get("machines", []):
        log.debug("Lite runtime at %s is for %s, this machine is %s", folder, info.get("arch"), platform.machine())
        return None
    return dict(info, folder=str(folder))


def version() -> Optional[str]:
    info = runtime_info()
    return info.get("version", "unknown") if info else None


_LIB = None


def _library() -> ctypes.CDLL:
    global _LIB
    if _LIB is not None:
        return _LIB
    info = runtime_info()
    if info is None:
        raise BackendUnavailable("no Paddle Lite ARM runtime for this machine was found",
                                 f"build it on a host with `wherry targets build-lite`, then pip install the wheel "
                                 f"on the board or set {ENV}=/path/to/{PACKAGE}")
    path = Path(info["folder"]) / info.get("library", "libwherry_lite.so")
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        raise BackendUnavailable(f"the Paddle Lite runtime at {path} cannot be loaded: {exc}",
                                 f"the board needs glibc >= {info.get('glibc', '2.34')} and libstdc++ from GCC >= 12 "
                                 "(Debian bookworm, Raspberry Pi OS bookworm, Ubuntu 22.04 or newer)") from None
    c_void_p, c_int, c_char_p, c_size_t = ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t
    i64p = ctypes.POINTER(ctypes.c_int64)
    u64p, sizep = ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(c_size_t)
    for name, restype, argtypes in (
            ("wherry_lite_version", c_char_p, []),
            ("wherry_lite_commit", c_char_p, []),
            ("wherry_lite_last_error", c_char_p, []),
            ("wherry_lite_create", c_void_p, [c_char_p, c_int]),
            ("wherry_lite_destroy", None, [c_void_p]),
            ("wherry_lite_predictor_version", c_char_p, [c_void_p]),
            ("wherry_lite_input_count", c_int, [c_void_p]),
            ("wherry_lite_output_count", c_int, [c_void_p]),
            ("wherry_lite_input_name", c_char_p, [c_void_p, c_int]),
            ("wherry_lite_output_name", c_char_p, [c_void_p, c_int]),
            ("wherry_lite_set_input", c_int, [c_void_p, c_int, c_int, i64p, c_int, c_void_p, c_size_t]),
            ("wherry_lite_set_input_lod", c_int, [c_void_p, c_int, u64p, sizep, c_int]),
            ("wherry_lite_run", c_int, [c_void_p]),
            ("wherry_lite_output_info", c_int, [c_void_p, c_int, ctypes.POINTER(c_int), i64p, c_int,
                                                ctypes.POINTER(c_int)]),
            ("wherry_lite_output_copy", c_int, [c_void_p, c_int, c_void_p, c_size_t]),
            ("wherry_lite_output_lod", c_int, [c_void_p, c_int, u64p, c_size_t, sizep, c_int,
                                               ctypes.POINTER(c_int)])):
        fn = getattr(lib, name, None)
        if fn is None and name in _SINCE_LOD:
            continue  # a runtime built before sequence inputs: it still runs every other model
        if fn is None:
            raise BackendUnavailable(f"the Paddle Lite runtime at {path} has no {name}: not a wherry Lite runtime",
                                     "rebuild it with `wherry targets build-lite`")
        fn.restype, fn.argtypes = restype, argtypes
    _LIB = lib
    return lib


def library_version() -> Dict[str, str]:
    """Tag and commit the loaded runtime was built from (loads the library)."""
    lib = _library()
    return {"version": lib.wherry_lite_version().decode(), "commit": lib.wherry_lite_commit().decode()}


def _error(lib: ctypes.CDLL) -> str:
    return (lib.wherry_lite_last_error() or b"no message").decode(errors="replace").strip()


class PaddleLiteLightBackend(Backend):
    name = "paddlelite"

    def __init__(self, path: str, threads: Optional[int] = None, inputs: Optional[List[TensorSpec]] = None,
                 outputs: Optional[List[TensorSpec]] = None) -> None:
        super().__init__()
        lib = self._lib = _library()
        self._handle = lib.wherry_lite_create(os.fsencode(path), int(threads or 0))
        if not self._handle:
            raise BundleError(f"Paddle Lite cannot load {path}: {_error(lib)}",
                              "the file is damaged or not a .nb for this Paddle Lite version; convert it again")
        self.version = lib.wherry_lite_predictor_version(self._handle).decode()
        self.commit = lib.wherry_lite_commit().decode()
        self._in_names = [lib.wherry_lite_input_name(self._handle, i).decode()
                          for i in range(lib.wherry_lite_input_count(self._handle))]
        self._out_names = [lib.wherry_lite_output_name(self._handle, i).decode()
                           for i in range(lib.wherry_lite_output_count(self._handle))]
        self.describe_by_names(self._in_names, self._out_names, inputs, outputs)

    def run(self, feeds: Dict[str, NDArray[Any]]) -> Dict[str, NDArray[Any]]:
        lib, handle = self._lib, self._handle
        for i, name in enumerate(self._in_names):
            value = np.ascontiguousarray(feeds[name])
            precision = _DTYPE_PRECISION.get(value.dtype)
            if precision is None:
                raise BundleError(f"input {name!r} has dtype {value.dtype}, which Paddle Lite cannot take",
                                  "pass float32, int64, int32, int8, uint8 or bool data")
            shape = (ctypes.c_int64 * max(value.ndim, 1))(*value.shape)
            if lib.wherry_lite_set_input(handle, i, precision, shape, value.ndim,
                                         value.ctypes.data_as(ctypes.c_void_p), value.nbytes) != 0:
                raise BundleError(f"Paddle Lite refused input {name!r}: {_error(lib)}",
                                  "check the input's shape and dtype against the model")
            if lengths_key(name) in feeds:  # a sequence (LoD) input: Lite takes Paddle's LoD offsets
                self._set_lod(i, name, [offsets(feeds[lengths_key(name)])])
        if lib.wherry_lite_run(handle) != 0:
            raise BundleError(f"Paddle Lite failed while running the model: {_error(lib)}",
                              "check the inputs' shapes; if they are right, report the model with this message")
        results = {}
        for i, name in enumerate(self._out_names):
            precision_out, ndim = ctypes.c_int(), ctypes.c_int()
            shape = (ctypes.c_int64 * _MAX_RANK)()
            if lib.wherry_lite_output_info(handle, i, ctypes.byref(precision_out), shape, _MAX_RANK,
                                           ctypes.byref(ndim)) != 0:
                raise BundleError(f"cannot read Paddle Lite output {name!r}: {_error(lib)}")
            dtype = _PRECISION_DTYPE.get(precision_out.value)
            if dtype is None or ndim.value > _MAX_RANK:
                raise BundleError(f"Paddle Lite output {name!r} has an unsupported type "
                                  f"(precision {precision_out.value}, rank {ndim.value})")
            out = np.empty(tuple(shape[:ndim.value]), dtype=dtype)
            if lib.wherry_lite_output_copy(handle, i, out.ctypes.data_as(ctypes.c_void_p), out.nbytes) != 0:
                raise BundleError(f"cannot copy Paddle Lite output {name!r}: {_error(lib)}")
            results[name] = out
        return results

    def _require_lod(self) -> None:
        if not all(hasattr(self._lib, name) for name in _SINCE_LOD):
            raise BackendUnavailable("this Paddle Lite ARM runtime was built before wherry passed sequence lengths "
                                     "(LoD) to it", "rebuild it with `wherry targets build-lite` (seconds: only "
                                     "wherry's C interface is recompiled) and install the new wheel")

    def _set_lod(self, index: int, name: str, lod: List[List[int]]) -> None:
        self._require_lod()
        flat = [offset for level in lod for offset in level]
        values = (ctypes.c_uint64 * max(len(flat), 1))(*flat)
        sizes = (ctypes.c_size_t * max(len(lod), 1))(*[len(level) for level in lod])
        if self._lib.wherry_lite_set_input_lod(self._handle, index, values, sizes, len(lod)) != 0:
            raise BundleError(f"Paddle Lite refused the sequence lengths of input {name!r}: {_error(self._lib)}",
                              f"the lengths in {lengths_key(name)!r} must add up to the input's rows")

    def output_lod(self, name: str) -> List[List[int]]:
        """The LoD (sequence offsets per level) of output ``name`` after the last run; [] for a plain tensor."""
        self._require_lod()
        lib, index = self._lib, self._out_names.index(name)
        levels = ctypes.c_int()
        sizes = (ctypes.c_size_t * _MAX_RANK)()
        if lib.wherry_lite_output_lod(self._handle, index, None, 0, sizes, _MAX_RANK, ctypes.byref(levels)) != 0:
            raise BundleError(f"cannot read the LoD of Paddle Lite output {name!r}: {_error(lib)}")
        counts = list(sizes[:min(levels.value, _MAX_RANK)])
        values = (ctypes.c_uint64 * max(sum(counts), 1))()
        if lib.wherry_lite_output_lod(self._handle, index, values, sum(counts), sizes, _MAX_RANK,
                                      ctypes.byref(levels)) != 0:
            raise BundleError(f"cannot read the LoD of Paddle Lite output {name!r}: {_error(lib)}")
        lod, start = [], 0
        for count in counts:
            lod.append([int(v) for v in values[start:start + count]])
            start += count
        return lod

    def close(self) -> None:
        if getattr(self, "_handle", None):
            self._lib.wherry_lite_destroy(self._handle)
            self._handle = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter teardown
            pass
