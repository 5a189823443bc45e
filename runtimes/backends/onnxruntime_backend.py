"""ONNX Runtime backend (the CPU execution provider unless the caller names others)."""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from numpy.typing import NDArray

from ..errors import BackendUnavailable, BundleError, InputError
from ..npz import LENGTHS
from ..specs import TensorSpec
from .base import Backend

log = logging.getLogger(__name__)

_ORT_DTYPES = {
    "tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
    "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int16)": "int16", "tensor(int8)": "int8",
    "tensor(uint8)": "uint8", "tensor(bool)": "bool", "tensor(bfloat16)": "bfloat16",
}


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (arg.shape or ()))
    return TensorSpec(arg.name, _ORT_DTYPES.get(arg.type, arg.type), shape)


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: str, threads: Optional[int] = None, providers: Optional[List[str]] = None) -> None:
        super().__init__()
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise BackendUnavailable(f"onnxruntime cannot be imported: {exc}", "pip install onnxruntime") from None
        self.version = ort.__version__
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3  # warnings about unused initializers are noise for users
        # CPU unless asked: parity is what wherry checks, and a GPU provider that silently falls
        # back to CPU (ONNX Runtime only warns) would hide what really ran; so a missing one is an error.
        providers = list(providers or ["CPUExecutionProvider"])
        missing = [p for p in providers if p not in ort.get_available_providers()]
        if missing:
            raise BackendUnavailable(f"this onnxruntime has no {', '.join(missing)}",
                                     f"available here: {', '.join(ort.get_available_providers())}; a GPU provider "
                                     "needs its onnxruntime build (e.g. onnxruntime-gpu, or NVIDIA's JetPack wheel)")
        try:
            self._sess = ort.InferenceSession(path, sess_options=options, providers=providers)
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types for bad models
            raise BundleError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0][:300]}",
                              "the file is not a valid ONNX model for this onnxruntime; convert it again or "
                              "upgrade onnxruntime") from None
        self.inputs = [_spec(a) for a in self._sess.get_inputs()]
        self.outputs = [_spec(a) for a in self._sess.get_outputs()]
        self._names = [o.name for o in self.outputs]
        self.providers = self._sess.get_providers()

    def run(self, feeds: Dict[str, NDArray[Any]]) -> Dict[str, NDArray[Any]]:
        if any(k.endswith(LENGTHS) for k in feeds):
            raise InputError("ONNX Runtime cannot take sequence lengths: ONNX tensors carry no LoD",
                             "run this model's Paddle Lite .nb, which takes sequence (LoD) inputs")
        return dict(zip(self._names, self._sess.run(self._names, feeds)))

    def close(self) -> None:
        self._sess = None


def open_backend(path: str, threads: Optional[int] = None, inputs: Optional[List[TensorSpec]] = None,
                 outputs: Optional[List[TensorSpec]] = None, providers: Optional[List[str]] = None) -> Backend:
    # The ONNX file describes itself; manifest specs are not needed.
    return OnnxRuntimeBackend(path, threads, providers)
