"""RKNN backend: an ``.rknn`` on a Rockchip board's NPU through ``rknn-toolkit-lite2`` (``rknnlite``).

Only a Rockchip board runs it: the library talks to the NPU driver (librknnrt.so). wherry's ``.rknn``
files take NCHW inputs at batch 1 (as the bundle's golden data are): a larger batch runs one sample at
a time. The ``.rknn`` does not name its tensors for rknnlite, so inputs and outputs take the names and
order of the bundle's manifest. Not exercised on hardware by wherry's tests (no board here); on x86 the
converter's simulation of the compiled graph is what is recorded, never a pass of this backend.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np
from numpy.typing import NDArray

from ..errors import BackendUnavailable, BundleError, InputError
from ..specs import TensorSpec
from .base import Backend


class RknnLiteBackend(Backend):
    name = "rknn"

    def __init__(self, path: str, threads: Optional[int] = None, inputs: Optional[List[TensorSpec]] = None,
                 outputs: Optional[List[TensorSpec]] = None) -> None:
        super().__init__()
        try:
            from rknnlite.api import RKNNLite
        except ImportError as exc:
            raise BackendUnavailable(f"rknn-toolkit-lite2 cannot be imported: {exc}",
                                     "on a Rockchip board: pip install rknn-toolkit-lite2") from None
        if not inputs or not outputs:
            raise InputError(f"{path}: an .rknn needs the bundle's manifest for its tensor names",
                             "open the bundle directory (or the .rknn inside it), not a copied file alone")
        self._lite = RKNNLite(verbose=False)
        if self._lite.load_rknn(path) != 0 or self._lite.init_runtime() != 0:
            raise BundleError(f"rknn-toolkit-lite2 cannot load {path} on this board's NPU",
                              "check the NPU driver (librknnrt.so) and that the .rknn was built for this SoC")
        self.inputs, self.outputs = list(inputs), list(outputs)

    def run(self, feeds: Dict[str, NDArray[Any]]) -> Dict[str, NDArray[Any]]:
        names = [s.name for s in self.inputs]
        batch = len(feeds[names[0]])
        rows = [self._lite.inference(inputs=[np.ascontiguousarray(feeds[n][i:i + 1]) for n in names],
                                     data_format=["nchw"] * len(names)) for i in range(batch)]
        return {spec.name: np.concatenate([np.asarray(r[k], dtype=np.float32) for r in rows])
                for k, spec in enumerate(self.outputs)}

    def close(self) -> None:
        if self._lite is not None:
            self._lite.release()
            self._lite = None


def open_backend(path: str, threads: Optional[int] = None, inputs: Optional[List[TensorSpec]] = None,
                 outputs: Optional[List[TensorSpec]] = None) -> Backend:
    return RknnLiteBackend(path, threads, inputs, outputs)
