"""Errors that carry a message for people and a hint saying what to do next.

Everything wherry raises on purpose derives from WherryError; the CLIs print
``message`` and ``hint`` and exit non-zero instead of showing a traceback.
"""
from __future__ import annotations


class WherryError(Exception):
    """A failure the user can act on."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class BundleError(WherryError):
    """A bundle or manifest is missing, malformed, tampered with or of an unknown version."""


class ModelError(WherryError):
    """A Paddle model's files are missing, ambiguous, corrupt or not an inference program."""


class InputError(WherryError):
    """Feeds or data files do not match what the model expects."""


class BackendUnavailable(WherryError):
    """The library a backend needs is not installed on this device."""


class SessionClosed(WherryError):
    """A Session was used after ``close()`` (or after its ``with`` block ended)."""


class ArchMismatch(WherryError):
    """An artifact was built for another CPU architecture than this device's."""


class Timeout(WherryError):
    """Work in a child process took longer than its limit; the child was stopped."""


class NativeCrash(WherryError):
    """A native library (Paddle Lite, paddle2onnx, ...) died with a signal or aborted.

    The caller survives because the work ran in a child process.
    """

    def __init__(self, tool: str, signal_name: str | None, log_tail: str, what: str = "",
                 hint: str | None = None):
        head = f"{tool} crashed" + (f" ({signal_name})" if signal_name else "")
        if what:
            head += f" while {what}"
        tail = log_tail.strip()
        message = head + (f"; last log lines:\n{_indent(tail)}" if tail else "")
        super().__init__(message, hint)
        self.tool = tool
        self.signal_name = signal_name
        self.log_tail = tail


def _indent(text: str, prefix: str = "    ") -> str:
    return "\n".join(prefix + line for line in text.splitlines())


class PaddleOpMissing(BundleError):
    """The installed Paddle has no op or kernel for an op of the model (Paddle 3 dropped many Paddle 1.x
    LoD ops: sequence_unpad, sequence_pad, ...), so it cannot be the model's reference run.

    ``op`` and ``paddle_version`` say which; ``missing(...)`` writes the one-line message."""

    def __init__(self, message: str, hint: str | None = None, *, op: str = "", paddle_version: str = ""):
        super().__init__(message, hint)
        self.op = op
        self.paddle_version = paddle_version

    @classmethod
    def missing(cls, op: str, paddle_version: str, todo: str) -> "PaddleOpMissing":
        dropped = " (a Paddle 1.x op Paddle 3 dropped)" if paddle_version.split(".")[0].isdigit() \
            and int(paddle_version.split(".")[0]) >= 3 else ""
        return cls(f"Paddle {paddle_version} has no kernel for op {op}{dropped}: {todo}", None, op=op,
                   paddle_version=paddle_version)
