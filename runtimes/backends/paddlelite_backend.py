"""Paddle Lite light API backend (``.nb`` files) through the ``paddlelite`` wheel (x86_64 hosts).
On an ARM board, ``open_backend`` uses the runtime wherry builds instead (paddlelite_light.py).

Quirks of paddlelite 2.13 handled here (see docs/toolchain.md):

* Under numpy 2, ``Tensor.from_numpy`` fills the tensor with garbage (it still
  allocates the right shape and type). ``resize`` + ``set_float_data(list)``
  is exact but costs ~4 ms per 1x3x224x224 input. We call ``from_numpy``
  (to size and allocate) and then copy the bytes into the tensor's own buffer
  through ``Tensor.numpy()``, a writable view: exact under numpy 1 and 2 for
  one extra memcpy (~0.02-0.03 ms for 1x3x224x224; see benchmarks/bench_runtime.py).
  ``Tensor.numpy()`` on an input that was never allocated segfaults, hence the
  ``from_numpy`` first.
* ``get_output(i).numpy()`` is a view of Lite's buffer, overwritten by the next
  run: outputs are copied. ``float_data()`` aborts on x86 outputs: never used.
* A missing model file aborts the process: existence is checked before.
* ``MobileConfig`` has no thread setter in the x86 build: threads are ignored there.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional

import numpy as np
from numpy.typing import NDArray

from ..errors import BackendUnavailable, BundleError
from ..npz import lengths_key, offsets
from ..specs import TensorSpec
from .base import Backend

log = logging.getLogger(__name__)

#: True when the numpy-2 safe input path is used (exposed for the benchmark).
NUMPY2 = int(np.__version__.split(".")[0]) >= 2


def set_input(tensor: Any, value: NDArray[Any], exact_copy: bool = NUMPY2) -> None:
    """Put ``value`` into a Lite input tensor, exactly, under numpy 1.x and 2.x."""
    tensor.from_numpy(value)
    if not exact_copy:
        return
    buffer = tensor.numpy()
    if buffer.dtype != value.dtype or buffer.shape != value.shape:
        raise BundleError(f"Paddle Lite allocated a {buffer.dtype}{list(buffer.shape)} input for a "
                          f"{value.dtype}{list(value.shape)} feed", "pass inputs of the dtype the model expects")
    np.copyto(buffer, value)


class PaddleLiteBackend(Backend):
    name = "paddlelite"

    def __init__(self, path: str, threads: Optional[int] = None, inputs: Optional[List[TensorSpec]] = None,
                 outputs: Optional[List[TensorSpec]] = None) -> None:
        super().__init__()
        if not os.path.isfile(path):  # Lite aborts the process on a missing file
            raise BundleError(f"Paddle Lite model {path} does not exist", "check the path of the .nb file")
        if os.path.getsize(path) < 64:
            raise BundleError(f"{path} is too small to be a Paddle Lite model", "copy or convert the .nb again")
        try:
            from paddlelite import lite
        except ImportError as exc:
            raise BackendUnavailable(f"Paddle Lite cannot be imported: {exc}",
                                     "pip install paddlelite (x86_64), or build its Python API on ARM") from None
        config = lite.MobileConfig()
        config.set_model_from_file(path)
        if threads:
            if hasattr(config, "set_threads"):  # ARM builds only
                config.set_threads(int(threads))
            else:
                log.debug("this Paddle Lite build has no thread setting; ignoring threads=%s", threads)
        try:
            self._predictor = lite.create_paddle_predictor(config)
        except Exception as exc:  # noqa: BLE001 - pybind raises RuntimeError or plain Exception
            raise BundleError(f"Paddle Lite cannot load {path}: {exc}",
                              "the file is not a .nb for this Paddle Lite version; convert it again") from None
        self.version = self._predictor.get_version()
        self._in_names = list(self._predictor.get_input_names())
        self._out_names = list(self._predictor.get_output_names())
        self.describe_by_names(self._in_names, self._out_names, inputs, outputs)

    def run(self, feeds: Dict[str, NDArray[Any]]) -> Dict[str, NDArray[Any]]:
        predictor = self._predictor
        for i, name in enumerate(self._in_names):
            tensor = predictor.get_input(i)
            set_input(tensor, feeds[name])
            if lengths_key(name) in feeds:  # a sequence (LoD) input: Lite takes Paddle's LoD offsets
                tensor.set_lod([offsets(feeds[lengths_key(name)])])
        predictor.run()
        # .numpy() is a view of Lite's buffer: copy before the next run overwrites it.
        return {name: np.array(predictor.get_output(i).numpy(), copy=True)
                for i, name in enumerate(self._out_names)}

    def close(self) -> None:
        self._predictor = None


def open_backend(path: str, threads: Optional[int] = None, inputs: Optional[List[TensorSpec]] = None,
                 outputs: Optional[List[TensorSpec]] = None) -> Backend:
    """Lite's ARM runtime built by wherry when this machine has one (a board), else the paddlelite wheel."""
    from . import paddlelite_light

    if not os.path.isfile(path):  # Lite aborts the process on a missing file
        raise BundleError(f"Paddle Lite model {path} does not exist", "check the path of the .nb file")
    if os.path.getsize(path) < 64:
        raise BundleError(f"{path} is too small to be a Paddle Lite model", "copy or convert the .nb again")
    if paddlelite_light.runtime_info() is not None:
        return paddlelite_light.PaddleLiteLightBackend(path, threads, inputs, outputs)
    return PaddleLiteBackend(path, threads, inputs, outputs)
