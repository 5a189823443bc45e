"""Run a backend in a child process so a native crash cannot take the caller down.

The child is ``python -m wherry.runtimes.worker RFD WFD``: it reads requests from one
pipe and writes replies to another (its stdout/stderr are the native
libraries' logs and go to a file, for the tail shown when it dies). Arrays
travel as uncompressed .npz bytes (no pickle); a segfault or abort in the child
becomes ``NativeCrash(backend, signal, last log lines)``.
"""
from __future__ import annotations

import io
import json
import logging
import os
import select
import shlex
import signal
import struct
import subprocess
import sys
import tempfile
import time
import weakref
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, NoReturn, Optional, Sequence, Tuple

from . import errors, lite_log
from .backends.base import Backend
from .errors import InputError, NativeCrash, PaddleOpMissing, Timeout, WherryError
from .paddle_errors import is_paddle_error, summarize
from .specs import TensorSpec

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .session import Target

    Arrays = Dict[str, NDArray[Any]]

log = logging.getLogger(__name__)

_NOISE = ("ccache", "warnings.warn(", "UserWarning")
_MAX_HEADER = 1 << 24


class ChildGone(Exception):
    """The other process closed its end of the pipe (it exited or died)."""


# ----------------------------------------------------------------------------- framing

class _TimedOut(Exception):
    pass


def _read_exact(fd: int, size: int, deadline: Optional[float] = None) -> bytes:
    chunks, left = [], size
    while left:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([fd], [], [], wait)[0]:
                raise _TimedOut()
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise ChildGone()
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def send(fd: int, header: Mapping[str, Any], arrays: Optional[Mapping[str, NDArray[Any]]] = None) -> None:
    payload = b""
    if arrays is not None:
        import numpy as np

        buf = io.BytesIO()
        np.savez(buf, **arrays)
        payload = buf.getvalue()
    head = json.dumps(header).encode()
    _write_all(fd, struct.pack("<QQ", len(head), len(payload)) + head + payload)


def receive(fd: int, deadline: Optional[float] = None,
            max_bytes: Optional[int] = None) -> Tuple[Dict[str, Any], Optional[Arrays]]:
    """One message; ``deadline`` (time.monotonic) bounds the wait, ``max_bytes`` the arrays
    (default runtimes.npz.MAX_NPZ_BYTES)."""
    from .npz import MAX_NPZ_BYTES, read_npz

    limit = MAX_NPZ_BYTES if max_bytes is None else max_bytes
    head_len, payload_len = struct.unpack("<QQ", _read_exact(fd, 16, deadline))
    if head_len > _MAX_HEADER:
        raise ChildGone()  # not a message of ours: treat the peer as broken
    header = json.loads(_read_exact(fd, head_len, deadline).decode())
    if payload_len > limit + _MAX_HEADER:
        raise InputError(f"the outputs are larger than the limit of {limit >> 20} MiB",
                         "the model makes outputs too large to bring back here")
    arrays = None
    if payload_len:
        arrays = read_npz(io.BytesIO(_read_exact(fd, payload_len, deadline)), "a message from the other process",
                          limit)
    return header, arrays


def error_to_json(exc: BaseException) -> Dict[str, Any]:
    if isinstance(exc, PaddleOpMissing):   # which op and Paddle travel too: convert acts on them
        return {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint, "op": exc.op,
                "paddle_version": exc.paddle_version}
    if isinstance(exc, WherryError):
        return {"type": type(exc).__name__, "message": exc.message, "hint": exc.hint}
    if is_paddle_error(str(exc)):  # a Paddle report is a wall of C++ traceback: keep its cause
        message, hint = summarize(str(exc))
        return {"type": "WherryError", "message": f"Paddle: {message}", "hint": hint}
    return {"type": "WherryError", "message": f"{type(exc).__name__}: {exc}", "hint": None}


def error_from_json(data: Mapping[str, Any]) -> WherryError:
    cls = getattr(errors, data.get("type", ""), None)
    if not (isinstance(cls, type) and issubclass(cls, WherryError)) or cls is NativeCrash:
        cls = WherryError
    if cls is PaddleOpMissing:
        return PaddleOpMissing(data.get("message", "unknown error"), data.get("hint"), op=str(data.get("op", "")),
                               paddle_version=str(data.get("paddle_version", "")))
    return cls(data.get("message", "unknown error"), data.get("hint"))


# ----------------------------------------------------------------------------- parent side

def _tail(path: str, lines: int = 12) -> str:
    try:
        with open(path, errors="replace") as fh:
            text = fh.read()
    except OSError:
        return ""
    kept = [ln for ln in text.splitlines() if ln.strip() and not any(n in ln for n in _NOISE)]
    return "\n".join(kept[-lines:])


def _cleanup(proc: subprocess.Popen[bytes], fds: Sequence[int], log_path: str) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    try:
        os.unlink(log_path)
    except OSError:
        pass


#: How to start another program of this device, when it cannot be executed directly. The emulated
#: board sets it: its Python runs under qemu user-mode emulation, and an aarch64 program it starts
#: would be handed to the x86 kernel; prefixed with the emulator, the child runs emulated too.
LAUNCHER_ENV = "WHERRY_CHILD_LAUNCHER"


def child_launcher() -> List[str]:
    """The command words to put before a child Python (empty on a real device)."""
    return shlex.split(os.environ.get(LAUNCHER_ENV, ""))


class IsolatedBackend(Backend):
    """A backend living in a child process; same protocol as the in-process ones."""

    def __init__(self, target: Optional[Target], threads: Optional[int] = None, timeout: Optional[float] = None,
                 providers: Optional[List[str]] = None, max_reply_bytes: Optional[int] = None) -> None:
        """``target`` None: start the child idle (SharedChild.prewarm); ``load`` gives it a model later."""
        super().__init__()
        self.name = target.backend if target is not None else "isolated child"
        self._label = target.label if target is not None else "an idle child"
        self._unread_replies = 0  # replies to requests sent without waiting (preload)
        self._timeout = timeout
        self._max_reply = max_reply_bytes
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        fd, self._log_path = tempfile.mkstemp(prefix="wherry-session-", suffix=".log")
        env = dict(os.environ)
        # The package must be importable in the child even when wherry is not installed (a board copy
        # of wherry/runtimes on PYTHONPATH): add the directory that holds its top-level package.
        root = os.path.abspath(__file__)
        for _ in range(__package__.count(".") + 2):
            root = os.path.dirname(root)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        try:
            self._proc = subprocess.Popen(
                [*child_launcher(), sys.executable, "-m", f"{__package__}.worker", str(to_child_r), str(from_child_w),
                 str(os.getpid())],
                stdin=subprocess.DEVNULL, stdout=fd, stderr=fd, env=env,
                pass_fds=(to_child_r, from_child_w))
        except OSError as exc:
            # e.g. under qemu user-mode emulation, which cannot start another emulated program
            os.close(to_child_w)
            os.close(from_child_r)
            raise WherryError(f"cannot start an isolated child process on this device: {exc.strerror or exc}",
                              "run without isolation (--no-isolate, or isolate=False)") from None
        finally:
            os.close(fd)
            os.close(to_child_r)
            os.close(from_child_w)
        self._w, self._r = to_child_w, from_child_r
        self._finalizer = weakref.finalize(self, _cleanup, self._proc, (self._w, self._r), self._log_path)
        self._threads = threads
        self.pid = self._proc.pid
        if target is not None:
            self.load(target, providers)

    def preload(self, backend_names: List[str]) -> None:
        """Have the child import these backends' libraries now, without waiting for it to finish."""
        send(self._w, {"op": "preload", "backends": list(backend_names)})
        self._unread_replies += 1

    def load(self, target: Target, providers: Optional[List[str]] = None) -> None:
        """Load `target` in this child, replacing the model it held (the child loads one at a time)."""
        self.name, self._label = target.backend, target.label
        reply, _ = self._call({"op": "open", "backend": target.backend, "path": target.path, "threads": self._threads,
                               "providers": providers,
                               "inputs": [s.to_json() for s in target.inputs] if target.inputs else None,
                               "outputs": [s.to_json() for s in target.outputs] if target.outputs else None},
                              None, f"loading {target.label}")
        self.inputs = [TensorSpec(s["name"], s["dtype"], tuple(s["shape"])) for s in reply["inputs"]]
        self.outputs = [TensorSpec(s["name"], s["dtype"], tuple(s["shape"])) for s in reply["outputs"]]
        self.specs_complete = reply["specs_complete"]
        self.version = reply.get("version")
        self.providers = reply.get("providers")

    @property
    def alive(self) -> bool:
        return self._finalizer.alive and self._proc.poll() is None

    def _call(self, header: Dict[str, Any], arrays: Optional[Mapping[str, NDArray[Any]]],
              what: str) -> Tuple[Dict[str, Any], Optional[Arrays]]:
        deadline = time.monotonic() + self._timeout if self._timeout else None
        try:
            send(self._w, header, arrays)
            while self._unread_replies:   # a preload's reply comes first; its errors are not this call's
                receive(self._r, deadline, self._max_reply)
                self._unread_replies -= 1
            reply, out = receive(self._r, deadline, self._max_reply)
        except InputError:
            self._finalizer()  # the unread reply leaves the pipe out of step: this child is done
            raise
        except _TimedOut:
            self._finalizer()  # kills the child: a model that never finishes must not pin the device
            raise Timeout(f"{self.name} did not finish {what} within {self._timeout:g} s; the process was stopped",
                          "a model that runs this long is likely broken (e.g. an endless loop); "
                          "raise the limit with --timeout (check) or --check-timeout (convert) if it is really that slow") from None
        except (ChildGone, BrokenPipeError, OSError):
            self._raise_crash(what)
        if "error" in reply:
            raise error_from_json(reply["error"])
        return reply, out

    def _raise_crash(self, what: str) -> NoReturn:
        try:
            code = self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            code = self._proc.wait()
        tail = _tail(self._log_path)
        self._finalizer()
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
        else:
            name = f"exit code {code}"
        site = lite_log.crash_site(tail) if self.name == "paddlelite" else None
        raise NativeCrash(self.name, name, tail, what=f"{what} {site}" if site else what,
                          hint="the native library failed on this model; the caller is unharmed. "
                               "Try another artifact or report the model with this log")

    def run(self, feeds: Dict[str, NDArray[Any]]) -> Dict[str, NDArray[Any]]:
        _, outputs = self._call({"op": "run"}, feeds, f"running {self._label}")
        return outputs or {}

    def close(self) -> None:
        if self._finalizer.alive:
            try:
                send(self._w, {"op": "close"})
                self._proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._finalizer()


class SharedChild:
    """One isolated child that loads several models in turn (the artifacts of a bundle's check): one
    interpreter start and one set of library imports instead of one per artifact. A crash or a
    timeout still costs only the model that caused it: the child dies with it and the next model
    gets a fresh one (``fresh`` says whether the last model was the first in its child)."""

    def __init__(self, threads: Optional[int] = None, timeout: Optional[float] = None,
                 max_reply_bytes: Optional[int] = None) -> None:
        self._args = (threads, timeout)
        self._max_reply = max_reply_bytes
        self._backend: Optional[IsolatedBackend] = None
        self._idle = False   # the child was started ahead (prewarm) and has loaded no model yet
        self.fresh = True

    def set_timeout(self, timeout: Optional[float]) -> None:
        """Change the limit on each load and run (the converter learns it from the golden run, after the
        child was started ahead); applies to the running child too."""
        self._args = (self._args[0], timeout)
        if self._backend is not None:
            self._backend._timeout = timeout

    def prewarm(self, backend_names: List[str]) -> None:
        """Start the child now and let it import these backends while the caller does other work (the
        converter: during the golden run and the exports); the first ``borrow`` then finds it ready."""
        if self._backend is None:
            self._backend = IsolatedBackend(None, *self._args, max_reply_bytes=self._max_reply)
            self._backend.preload(backend_names)
            self._idle = True

    def borrow(self, target: Target, providers: Optional[List[str]] = None) -> "Backend":
        if self._backend is not None and self._backend.alive:
            self.fresh = self._idle   # a prewarmed child has run nothing before this model
            self._idle = False
            self._backend.load(target, providers)
        else:
            self.fresh = True
            self._idle = False
            self._backend = None
            self._backend = IsolatedBackend(target, *self._args, providers=providers, max_reply_bytes=self._max_reply)
        return _Borrowed(self._backend)

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None


class _Borrowed(Backend):
    """A shared child's current model, for one Session: closing the session leaves the child running."""

    def __init__(self, backend: IsolatedBackend) -> None:
        super().__init__()
        self._backend = backend
        self.name, self.inputs, self.outputs = backend.name, backend.inputs, backend.outputs
        self.specs_complete, self.version, self.providers = backend.specs_complete, backend.version, backend.providers
        self.pid = backend.pid

    def run(self, feeds: Dict[str, NDArray[Any]]) -> Dict[str, NDArray[Any]]:
        return self._backend.run(feeds)
