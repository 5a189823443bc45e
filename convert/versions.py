"""The versions a conversion's result depends on: the manifest's `tools`, and part of the zoo's cache key."""
from __future__ import annotations

from importlib import metadata

import numpy as np

from wherry import runtimes


def tool_versions() -> dict:
    """The versions a conversion's result depends on (the manifest's tools; the zoo's cache key)."""
    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None
    return {"wherry": runtimes.__version__, "paddle": version("paddlepaddle"), "paddlelite": version("paddlelite"),
            "paddle2onnx": version("paddle2onnx"), "onnx": version("onnx"), "onnxruntime": version("onnxruntime"),
            "numpy": np.__version__}
