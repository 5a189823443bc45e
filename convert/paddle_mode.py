"""Which program mode (PIR or legacy) Paddle starts in: wherry's choice, not the caller's environment.

Paddle reads ``FLAGS_enable_pir_api`` once, when it is imported, in this process and in every child
process that inherits the variable. With ``0`` inherited (a shell or a notebook that exports legacy
programs), Paddle cannot deserialize a PIR ``model.json`` ("input data pointer is null"). wherry starts
the children that need legacy mode (PTQ, legacy exports) with the flag set explicitly, so everything
else runs with Paddle's default.
"""
from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager

from wherry.runtimes.errors import ModelError

FLAG = "FLAGS_enable_pir_api"


@contextmanager
def default_mode_for_children():
    """Hide an inherited ``FLAGS_enable_pir_api`` from the child processes started inside the block."""
    saved = os.environ.pop(FLAG, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[FLAG] = saved


def require_pir_reader(paddle) -> None:
    """Paddle imported in this process must be able to read PIR programs."""
    if not paddle.get_flags([FLAG]).get(FLAG, True):
        raise ModelError(f"Paddle was imported in this process with {FLAG}=0, a mode in which it cannot read "
                         "PIR programs (model.json)",
                         f"convert in a fresh process (the wherry command does), or unset {FLAG} before "
                         "Paddle is first imported")


def import_paddle():
    """Import paddle in this process and keep this process's SIGTERM handler.

    Importing paddle installs a C-level SIGTERM handler that dies without cleanup (no staging
    directory removed, no child stopped); wherry's own handler turns SIGTERM into the same clean
    stop as Ctrl-C. Paddle is imported only where its op registry is needed (PIR programs, some
    legalization passes), so this runs late, after that handler is in place."""
    if "paddle" in sys.modules:
        return sys.modules["paddle"]
    ours = signal.getsignal(signal.SIGTERM)
    import paddle

    if ours is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, ours)
    return paddle
