"""wherry runtimes: load any wherry artifact through one interface and check it.

Runs on boards with numpy and one backend installed; imports no backend
library until a session of that backend is opened.
"""
from .errors import (ArchMismatch, BackendUnavailable, BundleError, InputError,  # noqa: F401
                     NativeCrash, WherryError)
from .specs import TensorSpec  # noqa: F401

__version__ = "0.1.0"
