"""wherry converter (host side): Paddle models to bundles of .nb and .onnx artifacts.

``from wherry.convert import convert`` is the Python form of ``wherry convert`` (see api.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .api import ArtifactOutcome, ConvertedBundle, convert

__all__ = ["convert", "ConvertedBundle", "ArtifactOutcome"]


def __getattr__(name):
    # Lazy: `import wherry.convert.cli` must not load the pipeline (and Paddle) before it is needed.
    if name in __all__:
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
