"""wherry runtimes: load any wherry artifact through one interface and check it.

Runs on boards with numpy and one backend installed; imports no backend
library until a session of that backend is opened (and not even numpy until
something needs it, so the pytest plugin costs nothing when unused)::

    from wherry import runtimes
    with runtimes.open("out/mnv3.rpi4", artifact="model.onnx") as sess:
        outs = sess.run({"x": batch})
    report = runtimes.check("out/mnv3.rpi4")
"""
from __future__ import annotations

from os import PathLike
from typing import TYPE_CHECKING, Dict, Mapping, Optional, Sequence, Union

from .errors import (ArchMismatch, BackendUnavailable, BundleError, InputError, ModelError,
                     NativeCrash, SessionClosed, WherryError)
from .specs import TensorSpec
from .version import __version__ as __version__

if TYPE_CHECKING:  # imported lazily at run time (numpy, backends)
    from .checker import CheckReport
    from .session import Session

# `open` is deliberately not in __all__: `from wherry.runtimes import *` must not shadow the builtin.
# Use `from wherry import runtimes` and `runtimes.open(...)`.
__all__ = ["check", "available", "Session", "CheckReport", "TensorSpec", "WherryError", "BundleError",
           "ModelError", "InputError", "BackendUnavailable", "ArchMismatch", "NativeCrash", "SessionClosed"]

Tolerances = Mapping[str, Union[float, Mapping[str, float]]]


def open(path: Union[str, "PathLike[str]"], artifact: Optional[str] = None, threads: Optional[int] = None,  # noqa: A001
         isolate: bool = False, backend: Optional[str] = None,
         providers: Optional[Sequence[str]] = None, timeout: Optional[float] = None) -> "Session":
    """Open a bundle directory (``artifact`` picks one by file name), an ``.onnx``, a Lite ``.nb`` or a
    Paddle inference model; returns a ``Session``. ``isolate=True`` runs it in a child process (a native
    crash becomes a ``NativeCrash``), and then ``timeout`` (seconds) bounds loading and each run.
    ``providers``: ONNX Runtime execution providers in priority order,
    e.g. ``["CUDAExecutionProvider", "CPUExecutionProvider"]`` (default: CPU only; a provider this
    onnxruntime lacks is an error, never a silent CPU fallback)."""
    from .session import open_session

    return open_session(path, artifact=artifact, threads=threads, isolate=isolate, backend=backend,
                        providers=providers, timeout=timeout)


def available() -> Dict[str, Optional[str]]:
    """Backend name -> installed library version (None when absent); imports no backend."""
    from .backends import available as _available

    return _available()


def check(bundle_dir: Union[str, "PathLike[str]"], artifacts: Optional[Sequence[str]] = None,
          overrides: Optional[Tolerances] = None, isolate: bool = True,
          threads: Optional[int] = None, timeout: Union[None, str, float] = "auto",
          max_npz_bytes: Optional[int] = None) -> "CheckReport":
    """Check every artifact runnable on this device against the bundle's golden outputs -> CheckReport.

    ``overrides`` replaces manifest tolerances: ``{"rtol": 1e-3}`` for every output, or
    ``{"logits": {"rtol": 1e-3}}`` for one (``"*"`` names all). Fields: rtol (relative to the golden
    output's scale, max |golden|), atol, min_cosine, min_top1. Unknown names are an InputError.
    ``timeout`` (seconds) bounds each isolated artifact's load and run: "auto" (default) derives it from the
    golden run's time the bundle records (runtimes/time_limit.py), None is no limit; ``max_npz_bytes`` bounds
    the golden data."""
    from .checker import check as _check

    return _check(bundle_dir, artifacts=artifacts, overrides=overrides, isolate=isolate, threads=threads,
                  timeout=timeout, max_npz_bytes=max_npz_bytes)


def __getattr__(name):
    # Submodules as attributes (runtimes.parity, runtimes.npz, ...) without importing them eagerly.
    if name == "Session":
        from .session import Session
        return Session
    if name == "CheckReport":
        from .checker import CheckReport
        return CheckReport
    if name in ("parity", "npz", "bundle", "session", "device", "backends", "cli", "checker"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
