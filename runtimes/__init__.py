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

from .errors import (ArchMismatch, BackendUnavailable, BundleError, InputError,  # noqa: F401
                     NativeCrash, WherryError)
from .specs import TensorSpec  # noqa: F401
from .version import __version__  # noqa: F401



def open(path, artifact=None, threads=None, isolate=False, backend=None):  # noqa: A001 - the public name
    """Open a bundle directory (``artifact`` picks one by file name), an ``.onnx``, a Lite ``.nb`` or a
    Paddle inference model; returns a ``Session``. ``isolate=True`` runs it in a child process."""
    from .session import open_session

    return open_session(path, artifact=artifact, threads=threads, isolate=isolate, backend=backend)


def available():
    """Backend name -> installed library version (None when absent); imports no backend."""
    from .backends import available as _available

    return _available()


def check(bundle_dir, artifacts=None, overrides=None, isolate=True, threads=None):
    """Check every artifact runnable on this device against the bundle's golden outputs -> CheckReport."""
    from .checker import check as _check

    return _check(bundle_dir, artifacts=artifacts, overrides=overrides, isolate=isolate, threads=threads)


def __getattr__(name):
    # Submodules as attributes (runtimes.parity, runtimes.npz, ...) without importing them eagerly.
    if name in ("parity", "npz", "bundle", "session", "device", "backends", "cli", "checker"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
