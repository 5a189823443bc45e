"""OpenVINO backend: an IR (``model.xml`` + its ``model.bin``) on OpenVINO's CPU plugin.

Inference runs in f32 (``INFERENCE_PRECISION_HINT``): on CPUs with bf16 units (AVX512_BF16, AMX)
OpenVINO's default is bf16, which moves a text detector's outputs by up to 0.84, and wherry judges
the artifact, not the CPU's shortcut. An int8 IR keeps its int8 layers; only the float parts run f32.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Union

import numpy as np
from numpy.typing import NDArray

from ..errors import BackendUnavailable, BundleError
from ..specs import TensorSpec
from .base import Backend

DEVICE = "CPU"
PRECISION_HINT = "f32"


# OpenVINO's messages open with the source locations the exception passed through ("Exception from
# src/inference/src/cpp/core.cpp:117:", "Check 'x' failed at src/core/src/node.cpp:9:"); the cause follows
_LOCATION = re.compile(r"^(Exception from \S+:\d+:?|Check .* failed at \S+:\d+:?)$")


def cause(message: str) -> str:
    """The line of an OpenVINO error that says what went wrong, not where in OpenVINO's source."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    told = [line for line in lines if not _LOCATION.match(line)]
    return (told or lines or ["(no message)"])[0][:300]


def _spec(port: Any) -> TensorSpec:   # an openvino Output (a compiled model's port)
    shape = tuple(d.get_length() if d.is_static else None for d in port.get_partial_shape())
    try:
        dtype = np.dtype(port.get_element_type().to_dtype()).name
    except Exception:  # noqa: BLE001 - a type numpy does not know (bf16): its OpenVINO name
        dtype = port.get_element_type().get_type_name()
    return TensorSpec(port.any_name, dtype, shape)


class OpenVinoBackend(Backend):
    name = "openvino"

    def __init__(self, path: str, threads: Optional[int] = None) -> None:
        super().__init__()
        try:
            import openvino as ov
        except ImportError as exc:
            raise BackendUnavailable(f"openvino cannot be imported: {exc}", "pip install openvino") from None
        self.version = ov.__version__.split("-")[0]
        config: Dict[str, Union[str, int]] = {"INFERENCE_PRECISION_HINT": PRECISION_HINT}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        core = ov.Core()
        try:
            model = core.read_model(path)
        except Exception as exc:  # noqa: BLE001 - OpenVINO raises its own RuntimeError subclasses
            raise BundleError(f"OpenVINO cannot load {path}: {cause(str(exc))}",
                              "the IR (.xml and its .bin beside it) is damaged or newer than this openvino; "
                              "convert the model again or upgrade openvino") from None
        try:
            self._compiled = core.compile_model(model, DEVICE, config)
        except Exception as exc:  # noqa: BLE001
            raise BundleError(f"OpenVINO's {DEVICE} plugin cannot compile {path}: {cause(str(exc))}",
                              "an op of this model (or its dynamic shapes) is beyond this OpenVINO's CPU plugin; "
                              "the bundle's ONNX artifact is the fallback; report the model with this message") from None
        self.inputs = [_spec(p) for p in self._compiled.inputs]
        self.outputs = [_spec(p) for p in self._compiled.outputs]
        self._request = self._compiled.create_infer_request()

    def run(self, feeds: Dict[str, NDArray[Any]]) -> Dict[str, NDArray[Any]]:
        results = self._request.infer({name: np.ascontiguousarray(v) for name, v in feeds.items()})
        by_name = {port.any_name: value for port, value in results.items()}
        # copies: the request reuses its output buffers on the next run
        return {o.name: np.array(by_name[o.name]) for o in self.outputs}

    def close(self) -> None:
        self._request = self._compiled = None


def open_backend(path: str, threads: Optional[int] = None, inputs: Optional[List[TensorSpec]] = None,
                 outputs: Optional[List[TensorSpec]] = None) -> Backend:
    # the IR describes itself; manifest specs are not needed
    return OpenVinoBackend(path, threads)
