"""Backend registry. Each backend is one module that imports its library only when a
session of that backend is opened, so `runtimes` works with any subset installed."""
from __future__ import annotations

import importlib
import importlib.util
import logging
from importlib import metadata
from typing import Dict, List, Optional

from ..errors import BackendUnavailable
from ..specs import TensorSpec
from .base import Backend

log = logging.getLogger(__name__)

# name -> (backend module, library module, distributions that provide it, install hint)
_REGISTRY = {
    "onnxruntime": (".onnxruntime_backend", "onnxruntime",
                    ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"),
                    "pip install onnxruntime"),
    "paddlelite": (".paddlelite_backend", "paddlelite",
                   ("paddlelite",), "pip install paddlelite (x86_64 wheels only); on an ARM board: build the runtime "
                                    "on a host with `wherry targets build-lite --arch aarch64` and pip install its "
                                    "wheel on the board (docs/devices.md)"),
    "openvino": (".openvino_backend", "openvino", ("openvino",),
                 "pip install openvino (x86_64 and aarch64 wheels); `wherry convert` checks its IR in a cached "
                 "environment of its own"),
    "litert": (".litert_backend", "ai_edge_litert", ("ai-edge-litert",),
               "pip install ai-edge-litert (x86_64 and aarch64 wheels, CPython 3.10-3.13); `wherry convert` "
               "checks its .tflite in a cached environment of its own"),
    "rknn": (".rknn_backend", "rknnlite", ("rknn-toolkit-lite2",),
             "on a Rockchip board (RK3588, RK3576, RK356x): pip install rknn-toolkit-lite2 and Rockchip's NPU "
             "driver runtime (librknnrt.so); an .rknn cannot run anywhere else"),
    "paddle": (".paddle_backend", "paddle",
               ("paddlepaddle", "paddlepaddle-gpu"), "pip install paddlepaddle (host only)"),
}
NAMES = tuple(_REGISTRY)


def version(name: str) -> Optional[str]:
    """The installed version of a backend's library, or None; never imports it."""
    if name == "paddlelite":
        from . import paddlelite_light

        built = paddlelite_light.version()  # the ARM runtime wherry builds, when this machine has one
        if built:
            return built
    _, module, dists, _ = _REGISTRY[name]
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "unknown"  # importable but not installed as a distribution (e.g. built from source)


def available() -> Dict[str, Optional[str]]:
    return {name: version(name) for name in _REGISTRY}


def preload(name: str) -> None:
    """Import backend ``name``'s library now, if it is installed (a child warming up while its parent
    does other work); loading a model later finds it imported."""
    if name in _REGISTRY and version(name) is not None:
        try:
            importlib.import_module(_REGISTRY[name][0], __name__)
            importlib.import_module(_REGISTRY[name][1])
        except Exception:  # noqa: BLE001 - only a head start: loading a model reports the real error
            pass


def install_hint(name: str) -> str:
    return _REGISTRY[name][3]


def require(name: str) -> None:
    if name not in _REGISTRY:
        raise BackendUnavailable(f"unknown backend {name!r}", f"choose one of {', '.join(_REGISTRY)}")
    if version(name) is None:
        raise BackendUnavailable(f"backend {name} is not installed on this device", install_hint(name))


def load(name: str, path: str, threads: Optional[int] = None,
         inputs: Optional[List[TensorSpec]] = None, outputs: Optional[List[TensorSpec]] = None,
         providers: Optional[List[str]] = None) -> Backend:
    """Open ``path`` with backend ``name`` in this process (``providers``: ONNX Runtime only)."""
    require(name)
    module = importlib.import_module(_REGISTRY[name][0], __name__)
    extra = {"providers": providers} if providers is not None else {}
    return module.open_backend(path, threads=threads, inputs=inputs, outputs=outputs, **extra)
