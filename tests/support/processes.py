"""Child processes as a user starts them."""
from __future__ import annotations

import signal


def sigint_as_in_a_terminal() -> None:
    """preexec_fn for a child a test interrupts with SIGINT: a shell starts background jobs (CI's, say)
    with SIGINT ignored, children inherit that, and Python installs its KeyboardInterrupt handler
    only when SIGINT is not ignored; restore the default so Ctrl-C means what it does in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
