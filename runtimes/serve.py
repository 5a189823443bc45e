"""The HTTP runner: `python -m wherry.runtimes serve` on a device, so a host can check bundles there.

Standard library only (http.server), numpy and one backend on the device. Protocol (JSON unless noted;
errors are ``{"error": message, "hint": ...}`` with a 4xx/5xx status, and the server keeps serving):

    GET  /info                        this device (arch, CPU, OS, Python, backends) and "protocol": 2
    POST /bundles                     body: a bundle as .tar.gz -> {"id": ...}   (size-limited)
    POST /bundles/<id>/check          body (optional): JSON check options (runtimes/remote.py)
                                      -> {"ok": bool, "report": CheckReport JSON, "table": text, "junit": XML, ...}
    POST /bundles/<id>/run?artifact=F&backend=B&threads=N&random=1
                                      body: .npz of inputs, or empty for the bundle's golden inputs
                                      -> .npz of outputs (application/octet-stream; X-Wherry-Backend, X-Wherry-Seconds)
    POST /run?bundle=<id>&artifact=F  the same, the bundle named in the query
    POST /bundles/<id>/bench          body: JSON bench options -> the bench result (runs in a child process)
    DELETE /bundles/<id>              remove an uploaded bundle

Safety (threat model and limits: docs/security.md): binds 127.0.0.1 unless told otherwise, and then
requires a token (``Authorization: Bearer <token>``, compared in constant time). Bodies are streamed to
disk under a size limit; archives are unpacked member by member under limits on bytes and members, and
members must be plain files or directories inside the bundle (no absolute paths, no ``..``, no links);
every file a manifest names must resolve inside its bundle; .npz bodies are size-checked and never
unpickled; every check runs artifacts in isolated child processes with a time limit, one job at a
time; slow or silent clients are dropped (headers must arrive within --header-timeout); the work
directory is removed when the runner stops.

Load: at most --max-connections requests are served at once. A connection beyond that is still read
(its headers and a body up to 64 MiB, within the same time limits) and answered with a JSON 503 and
``Retry-After``, so the client sees a clean refusal it can retry, never a connection reset; the host
side (targets/devices/http.py) retries 503s and resets with backoff. Every connection carries one
request; its slot is freed as soon as the reply is sent, and a connection that finds no free slot waits
up to half a second for one before it is refused (a client's next request follows its last reply at once).
"""
from __future__ import annotations

import argparse
import bz2
import gzip
import hmac
import io
import json
import logging
import lzma
import math
import os
import re
import shutil
import signal
import socket
import sys
import tarfile
import tempfile
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath
from typing import (IO, TYPE_CHECKING, BinaryIO, Callable, Dict, List, Mapping, NoReturn, Optional, Sequence, Tuple,
                    Type, Union)
from urllib.parse import parse_qs, urlparse

from . import leftovers
from .errors import InputError, WherryError

if TYPE_CHECKING:
    from socketserver import BaseRequestHandler
    from types import FrameType

    from _typeshed import WriteableBuffer

log = logging.getLogger(__name__)

# what a stream server's handlers are given: the connection's socket (socketserver's type also allows a
# datagram server's (data, socket) pair) and the client's address, (host, port) or, over IPv6, four fields
_Request = Union[socket.socket, Tuple[bytes, socket.socket]]
_Address = Union[Tuple[str, int], Tuple[str, int, int, int]]
# an uploaded archive as read: the file itself, or gzip / bzip2 / xz decompressing it
_Stream = Union[BinaryIO, io.BufferedIOBase]

DEFAULT_PORT = 8765
DEFAULT_MAX_UPLOAD_MB = 512
_DRAIN_LIMIT = 64 * 1024 * 1024
_CHUNK = 256 * 1024
_MAX_TAR_READ = 1 << 20     # no tar header legitimately needs more in one piece (pax/long-name records)
_MAX_OPTIONS = 1 << 20     # a JSON options body (check, bench) is a few hundred bytes
_MAX_DEPTH = 32             # folders a bundle member may be nested in (a bundle has two levels)
_LENGTH = re.compile(r"[0-9]{1,19}")
_MIN_REFUSERS = 64          # connections beyond --max-connections read and answered 503 at once (more: closed)
_LINGER_S = 2.0             # after a reply, how long unread client bytes are drained so close() sends no reset
_RETRY_AFTER_S = 1
_SLOT_GRACE_S = 0.5         # a connection with no free slot waits this long for one before it is refused


@dataclass
class Limits:
    """What one request may cost the device (defaults documented in docs/security.md)."""

    max_upload: int = DEFAULT_MAX_UPLOAD_MB << 20     # bytes of one request body
    max_bundle: int = 1024 << 20                      # bytes an uploaded bundle unpacks to
    max_members: int = 1000                           # files and directories in one bundle archive
    max_arrays: int = 256 << 20                       # bytes of arrays in one .npz (inputs, golden data, outputs)
    client_timeout: float = 30.0                      # seconds a client may stay silent
    request_timeout: float = 600.0                    # seconds to receive one whole request
    header_timeout: float = 10.0                      # seconds to receive the request line and headers
    job_timeout: float = 600.0                        # seconds for loading or running one artifact
    max_connections: int = 16                         # requests served at once; more get 503


class HttpError(Exception):
    def __init__(self, status: int, message: str, hint: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


class _TooLarge(Exception):
    pass


class _BoundedTar(io.RawIOBase):
    """The decompressed tar stream as tarfile sees it: never more than ``limit`` bytes in all and no single
    read larger than _MAX_TAR_READ, so neither a compression bomb nor a huge pax header can fill memory."""

    def __init__(self, stream: _Stream, limit: int):
        super().__init__()
        self._stream, self._limit = stream, limit

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        if size is None or size < 0 or size > _MAX_TAR_READ:
            raise tarfile.ReadError("an archive header is far larger than any bundle needs")
        if self._stream.tell() + size > self._limit:
            raise _TooLarge()
        return self._stream.read(size)

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET or pos > self._limit:
            raise _TooLarge()
        return self._stream.seek(pos)

    def tell(self) -> int:
        return self._stream.tell()


def _decompressed(raw: BinaryIO) -> _Stream:
    """gzip, bzip2 or xz by their magic numbers; anything else is read as a plain tar."""
    magic = raw.read(6)
    raw.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw)
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(raw)
    if magic == b"\xfd7zXZ\x00":
        return lzma.LZMAFile(raw)
    return raw


def safe_extract(archive_path: str, dest: str, limits: Limits = Limits()) -> str:
    """Unpack a bundle archive into ``dest`` member by member, refusing anything that could land outside it or
    exceed the limits (bytes unpacked, members); returns the bundle root. The caller removes ``dest`` on error."""
    # what the tar stream may hold besides file data: a header (and maybe a pax/long-name record) per member
    stream_limit = limits.max_bundle + limits.max_members * 8192 + (1 << 20)
    unpacked = members = 0
    try:
        with open(archive_path, "rb") as raw, _decompressed(raw) as stream, \
                tarfile.open(fileobj=_BoundedTar(stream, stream_limit), mode="r:") as archive:
            while True:
                member = archive.next()
                if member is None:
                    break
                members += 1
                if members > limits.max_members:
                    raise HttpError(413, f"the archive holds more than {limits.max_members} members",
                                    "a bundle holds a handful of files; archive only the bundle directory")
                _check_member(member)
                unpacked += member.size
                if unpacked > limits.max_bundle:
                    raise _TooLarge()
                _unpack(archive, member, dest)
    except _TooLarge:
        raise HttpError(413, f"the archive unpacks to more than {limits.max_bundle >> 20} MiB",
                        "start the runner with a larger --max-bundle-mb") from None
    except (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, ValueError) as exc:
        raise HttpError(400, f"the upload is not a readable tar archive ({type(exc).__name__})",
                        "send the bundle directory as .tar.gz") from None
    roots = os.listdir(dest)
    if "manifest.json" in roots:
        return dest
    if len(roots) == 1 and os.path.isfile(os.path.join(dest, roots[0], "manifest.json")):
        return os.path.join(dest, roots[0])
    raise HttpError(400, "the archive holds no bundle (no manifest.json at its top)",
                    "archive the directory `wherry convert` wrote")


def _check_member(member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise HttpError(400, f"archive member {member.name!r} points outside the bundle",
                        "archive the bundle directory with relative paths")
    if len(path.parts) > _MAX_DEPTH:
        raise HttpError(400, f"an archive member is nested {len(path.parts)} folders deep (at most {_MAX_DEPTH})",
                        "archive the bundle directory as `wherry convert` wrote it")
    if not (member.isfile() or member.isdir()):
        raise HttpError(400, f"archive member {member.name!r} is not a plain file or directory",
                        "bundles hold only files and directories (no links or devices)")


def _unpack(archive: tarfile.TarFile, member: tarfile.TarInfo, dest: str) -> None:
    target = os.path.join(dest, *PurePosixPath(member.name).parts)
    if member.isdir():
        os.makedirs(target, exist_ok=True)
        return
    os.makedirs(os.path.dirname(target), exist_ok=True)
    src = archive.extractfile(member)
    if src is None:   # a member with no data (a link, a device): _check_member let none through
        raise tarfile.ReadError(f"archive member {member.name!r} is not a plain file")
    # "xb": a name given twice, or a member written through an earlier one, is an error, not an overwrite
    with src, open(target, "xb") as out:
        left = member.size
        while left > 0:
            chunk = src.read(min(left, _CHUNK))
            if not chunk:
                raise EOFError("archive member ends early")
            out.write(chunk)
            left -= len(chunk)


class Runner:
    """State of one server: where uploads go, the limits, the token."""

    def __init__(self, workdir: str, token: Optional[str], limits: Limits, own_workdir: bool):
        self.workdir, self.limits, self.own_workdir = workdir, limits, own_workdir
        self.expected = f"Bearer {token}".encode() if token else None
        self.bundles: Dict[str, str] = {}   # bundle id -> its root (where its manifest.json is)
        self.lock = threading.Lock()
        self.jobs = threading.Semaphore(1)  # one check or run at a time: bounded memory, undistorted timings
        self.uploads = os.path.join(workdir, ".uploads")
        self._dir_lock = None if own_workdir else _claim(workdir)
        os.makedirs(self.uploads, exist_ok=True)

    def authorized(self, header: Optional[str]) -> bool:
        if self.expected is None:
            return True
        return hmac.compare_digest((header or "").encode("utf-8", "surrogateescape"), self.expected)

    def cleanup(self) -> None:
        """Remove every upload (and the work directory when the runner made it)."""
        with self.lock:
            ids, self.bundles = list(self.bundles), {}
        for bundle_id in ids:
            shutil.rmtree(os.path.join(self.workdir, bundle_id), ignore_errors=True)
        shutil.rmtree(self.uploads, ignore_errors=True)
        if self.own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self._dir_lock is not None:   # the lock file goes too: the user's --dir is left as it was
            try:
                os.unlink(self._dir_lock.name)
            except OSError:
                pass
            self._dir_lock.close()   # releases the flock: another runner may use the --dir now
            self._dir_lock = None

    def bundle(self, bundle_id: str) -> str:
        with self.lock:
            if bundle_id not in self.bundles:
                raise HttpError(404, f"no bundle {bundle_id!r} on this device", "upload it first: POST /bundles")
            return self.bundles[bundle_id]


_BUNDLE_ID = re.compile(r"[0-9a-f]{12}")
_WORKDIR_PREFIX = "wherry-runner"


def _claim(workdir: str) -> IO[str]:
    """Lock a --dir for this runner (an open file holding an flock) and remove what a killed runner left in it:
    the lock proves no live runner uses the directory, so its uploads and unpacked bundles are stale. A
    second runner on the same --dir is refused (its clean-up would delete the first one's uploads)."""
    import fcntl

    os.makedirs(workdir, exist_ok=True)
    handle = open(os.path.join(workdir, ".runner.lock"), "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise WherryError(f"another runner is using {workdir}", "give each runner a --dir of its own") from None
    for entry in os.scandir(workdir):
        if entry.name == ".uploads" or (_BUNDLE_ID.fullmatch(entry.name) and entry.is_dir(follow_symlinks=False)):
            shutil.rmtree(entry.path, ignore_errors=True)
            log.info("removed %s, left by a runner that was killed", entry.path)
    return handle


# (method, path pattern) -> handler method; "*" matches one path segment (a bundle id)
_ROUTES: Dict[Tuple[str, Tuple[str, ...]], str] = {
    ("get", ("info",)): "_get_info",
    ("post", ("bundles",)): "_post_bundles",
    ("post", ("bundles", "*", "check")): "_post_check",
    ("post", ("bundles", "*", "run")): "_post_run",
    ("post", ("run",)): "_post_run",
    ("post", ("bundles", "*", "bench")): "_post_bench",
    ("delete", ("bundles", "*")): "_delete_bundle"}


def _route(method: str, parts: Sequence[str]) -> Optional[str]:
    for (verb, pattern), handler in _ROUTES.items():
        if verb == method and len(pattern) == len(parts) and all(p in ("*", q) for p, q in zip(pattern, parts)):
            return handler
    return None


class _DeadlineReader(io.RawIOBase):
    """The connection as the request parser reads it: each wait ends after ``idle`` seconds of silence, and
    the whole request must arrive before ``deadline`` (so a client trickling bytes is dropped too)."""

    def __init__(self, sock: socket.socket, idle: float, deadline: float):
        super().__init__()
        self._sock, self._idle, self._deadline = sock, idle, deadline

    def extend(self, deadline: float) -> None:
        """The headers are in: the body may take until ``deadline``."""
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("the request took too long to arrive")
        self._sock.settimeout(min(self._idle, left))
        return self._sock.recv_into(buffer)


def make_handler(runner: Runner, refuse: bool = False) -> Type[BaseHTTPRequestHandler]:
    """The request handler; with ``refuse`` it reads a request the runner has no slot for and answers 503."""
    limits = runner.limits

    class Handler(BaseHTTPRequestHandler):
        server_version = "wherry-runner/1"
        timeout = limits.client_timeout  # socket timeout while replying

        def setup(self) -> None:
            super().setup()
            self._start = time.monotonic()
            # a slow client (slowloris) gets header_timeout for its request line and headers
            deadline = self._start + min(limits.header_timeout, limits.request_timeout)
            self._reader = _DeadlineReader(self.connection, limits.client_timeout, deadline)
            self.rfile = io.BufferedReader(self._reader)

        def log_message(self, fmt: str, *args: object) -> None:  # through logging, not stderr prints
            log.info("%s %s", self.address_string(), fmt % args)

        def log_request(self, code: Union[int, str] = "-", size: Union[int, str] = "-") -> None:
            """The request log: one line per answered request (client, request, status, seconds taken)."""
            code = getattr(code, "value", code)
            line = getattr(self, "requestline", "") or "(no request line)"
            log.info("%s \"%s\" %s %.3fs%s", self.address_string(), line[:200], code,
                     time.monotonic() - self._start, " refused: busy" if refuse else "")

        # ------------------------------------------------------------------ plumbing
        def _reply(self, status: int, body: bytes, content_type: str = "application/json",
                   headers: Optional[Mapping[str, str]] = None) -> None:
            self.connection.settimeout(limits.client_timeout)
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def send_error(self, code: int, message: Optional[str] = None, explain: Optional[str] = None) -> None:
            """The stdlib's own refusals (a malformed request line, headers too long, an unknown method) as
            this runner's JSON errors instead of an HTML page (or, for a garbled request line, a bare body)."""
            self.close_connection = True
            if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
                self.request_version = "HTTP/1.0"   # answer with a status line and headers all the same
            short = self.responses.get(code, ("error",))[0]
            try:
                self._reply(code, json.dumps({"error": f"{code} {short}: {message or short}",
                                              "hint": "send an HTTP/1.x request; the protocol is in "
                                                      "runtimes/serve.py"}).encode(), headers={"Connection": "close"})
            except OSError:
                pass

        def _json(self, status: int, data: Mapping[str, object], headers: Optional[Mapping[str, str]] = None) -> None:
            self._reply(status, json.dumps(data).encode(), headers=headers)

        def _length(self) -> int:
            """The declared body length: digits only, one value, no chunked bodies (never read unbounded)."""
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                raise HttpError(411, "chunked request bodies are not accepted", "send a Content-Length header")
            values = set(self.headers.get_all("Content-Length") or [])
            if not values:
                return 0
            value = values.pop().strip()
            if values or not _LENGTH.fullmatch(value):
                self.close_connection = True
                raise HttpError(400, "the Content-Length header is not one non-negative number",
                                "send the body's size in bytes")
            return int(value)

        def _body_to(self, out: IO[bytes]) -> int:
            """Stream the request body into the open file ``out`` in chunks, within --max-upload-mb."""
            length = self._length()
            if length > limits.max_upload:
                # Read (and drop) a moderately oversized body so the client, still sending, gets this
                # answer instead of a broken pipe; beyond that bound just close the connection.
                if length <= limits.max_upload + _DRAIN_LIMIT:
                    self._copy(length, None)
                self.close_connection = True
                raise HttpError(413, f"upload of {length} bytes exceeds this runner's limit of {limits.max_upload}",
                                "start the runner with a larger --max-upload-mb")
            self._copy(length, out)
            return length

        def _copy(self, length: int, out: Optional[IO[bytes]]) -> None:
            while length > 0:
                chunk = self.rfile.read(min(length, _CHUNK))
                if not chunk:
                    self.close_connection = True
                    raise HttpError(400, "the request body ended before its Content-Length",
                                    "send exactly Content-Length bytes")
                if out is not None:
                    out.write(chunk)
                length -= len(chunk)

        def _upload_file(self) -> IO[bytes]:
            return tempfile.NamedTemporaryFile(dir=runner.uploads, prefix="upload-")

        def _job(self) -> _Release:
            """One check or run at a time; waiting longer than the job timeout is a 503."""
            if not runner.jobs.acquire(timeout=limits.job_timeout):
                raise HttpError(503, "the runner is busy with another check", "try again later")
            return _Release(runner.jobs)

        def _refuse(self) -> None:
            """Read what is refused (so the client, maybe still sending, gets this answer and not a reset)."""
            try:
                length = self._length()
                if length <= _DRAIN_LIMIT:
                    self._copy(length, None)
            except HttpError:
                pass
            self._json(503, {"error": f"the runner is busy: it serves {limits.max_connections} requests at once",
                             "hint": "try again in a moment (wherry retries by itself), or start the runner with a "
                                     "larger --max-connections"}, {"Retry-After": str(_RETRY_AFTER_S)})

        def _handle(self, method: str) -> None:
            self.close_connection = True  # one request per connection: its slot is free once answered
            # a refused body gets less time than a served one: the refusers are few and must turn over
            self._reader.extend(self._start + (min(limits.request_timeout, 3 * limits.header_timeout) if refuse
                                               else limits.request_timeout))
            try:
                if refuse:
                    return self._refuse()
                if not runner.authorized(self.headers.get("Authorization")):
                    self.close_connection = True
                    raise HttpError(401, "missing or wrong token", "send Authorization: Bearer <token>")
                url = urlparse(self.path)
                parts = [p for p in url.path.split("/") if p]
                route = _route(method, parts)
                if route is None:
                    raise HttpError(404, f"no such endpoint: {method.upper()} {url.path}",
                                    "see the protocol in runtimes/serve.py")
                getattr(self, route)(parts, parse_qs(url.query))
            except socket.timeout:
                self.close_connection = True
                log.info("%s dropped: the request did not arrive in time", self.address_string())
                return
            except HttpError as exc:
                self._json(exc.status, {"error": exc.message, "hint": exc.hint})
            except WherryError as exc:
                self._json(400, {"error": exc.message, "hint": exc.hint})
            except RecursionError:
                self._json(400, {"error": "the request is nested too deeply to read", "hint": "send a bundle "
                                 "archive or options as wherry writes them"})
            except Exception as exc:  # a request must never take the runner down (logged below)
                incident = uuid.uuid4().hex[:8]
                log.exception("request failed (incident %s)", incident)
                self._json(500, {"error": f"{type(exc).__name__}: {exc}",
                                 "hint": f"see the runner's log (its standard error, or its --log file), "
                                         f"incident {incident}"})

        def do_GET(self) -> None:
            self._handle("get")

        def do_POST(self) -> None:
            self._handle("post")

        def do_DELETE(self) -> None:
            self._handle("delete")

        # ------------------------------------------------------------------ endpoints
        def _get_info(self, parts: List[str], query: Dict[str, List[str]]) -> None:
            from .cli import device_info
            from .remote import PROTOCOL
            self._json(200, {**device_info(), "protocol": PROTOCOL})

        def _post_bundles(self, parts: List[str], query: Dict[str, List[str]]) -> None:
            bundle_id = uuid.uuid4().hex[:12]
            dest = os.path.join(runner.workdir, bundle_id)
            with self._upload_file() as upload:
                self._body_to(upload)
                upload.flush()
                os.makedirs(dest)
                try:
                    root = safe_extract(upload.name, dest, limits)
                except BaseException:
                    shutil.rmtree(dest, ignore_errors=True)
                    raise
            with runner.lock:
                runner.bundles[bundle_id] = root
            self._json(201, {"id": bundle_id})

        def _options(self) -> bytes:
            """A small JSON options body (check, bench), read whole."""
            length = self._length()
            if length > _MAX_OPTIONS:
                self.close_connection = True
                raise HttpError(413, f"an options body of {length} bytes is far larger than any needs",
                                "send the options as a small JSON object")
            buffer = io.BytesIO()
            self._copy(length, buffer)
            return buffer.getvalue()

        def _post_check(self, parts: List[str], query: Dict[str, List[str]]) -> None:
            from .remote import do_check
            root = runner.bundle(parts[1])
            body = self._options()
            with self._job():
                reply = do_check(root, body, limits.job_timeout, limits.max_arrays)
            self._json(200, reply)

        def _post_bench(self, parts: List[str], query: Dict[str, List[str]]) -> None:
            from .remote import do_bench
            root = runner.bundle(parts[1])
            body = self._options()
            with self._job():
                result = do_bench(root, body, limits.job_timeout)
            self._json(200, result)

        def _post_run(self, parts: List[str], query: Dict[str, List[str]]) -> None:
            import numpy as np

            from .cli import load_feeds
            from .npz import load_npz
            from .remote import run_options
            from .session import open_session
            named = query.get("bundle")
            bundle_id = parts[1] if len(parts) == 3 else (named[0] if named else None)
            if not bundle_id:
                raise HttpError(400, "POST /run needs ?bundle=<id>", "upload the bundle first: POST /bundles")
            root = runner.bundle(bundle_id)  # an unknown bundle is a 404 before the body is read
            options = run_options(root, query)
            with self._upload_file() as upload:
                sent = self._body_to(upload)
                upload.flush()
                try:
                    feeds = load_npz(upload.name, limits.max_arrays) if sent else None
                except InputError as exc:
                    raise HttpError(400, exc.message.replace(upload.name, "the request body"), exc.hint)
            start = time.perf_counter()
            with self._job(), open_session(root, artifact=options.artifact, isolate=True, timeout=limits.job_timeout,
                                           max_reply_bytes=limits.max_arrays, backend=options.backend,
                                           threads=options.threads) as session:
                # no body: the bundle's golden inputs (or --random data), as a local run without --inputs
                outputs = session.run(feeds if feeds is not None else load_feeds(options, session))
                backend = session.backend
            seconds = time.perf_counter() - start
            buffer = io.BytesIO()
            np.savez(buffer, **outputs)
            self._reply(200, buffer.getvalue(), "application/octet-stream",
                        {"X-Wherry-Backend": str(backend), "X-Wherry-Seconds": f"{seconds:.6f}"})

        def _delete_bundle(self, parts: List[str], query: Dict[str, List[str]]) -> None:
            root = runner.bundle(parts[1])
            with runner.lock:
                runner.bundles.pop(parts[1], None)
            shutil.rmtree(os.path.join(runner.workdir, parts[1]), ignore_errors=True)
            self._json(200, {"deleted": parts[1], "path": root})

    return Handler


class _Release:
    def __init__(self, semaphore: threading.Semaphore):
        self._semaphore = semaphore

    def __enter__(self) -> _Release:
        return self

    def __exit__(self, *exc: object) -> None:
        self._semaphore.release()


def _linger(sock: socket.socket) -> None:
    """Stop sending, then read (and drop) what the client still sends, for at most _LINGER_S seconds and
    _DRAIN_LIMIT bytes or until it closes its side."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + _LINGER_S
        drained = 0
        while drained <= _DRAIN_LIMIT:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            chunk = sock.recv(_CHUNK)
            if not chunk:
                break
            drained += len(chunk)
    except OSError:
        pass


class RunnerServer(ThreadingHTTPServer):
    """A threading HTTP server that serves at most ``max_connections`` requests at once (a read-and-answered
    503 for the rest) and removes its uploads and work directory when closed."""

    daemon_threads = True
    request_queue_size = 128   # a burst of clients waits in the kernel's backlog instead of being dropped there

    def __init__(self, address: Tuple[str, int], runner: Runner):
        self.runner = runner
        self._slots = threading.BoundedSemaphore(runner.limits.max_connections)
        self._refusers = threading.BoundedSemaphore(max(_MIN_REFUSERS, 4 * runner.limits.max_connections))
        self._refuse_handler = make_handler(runner, refuse=True)
        self._serve_handler = make_handler(runner)
        super().__init__(address, self._serve_handler)

    def process_request(self, request: _Request, client_address: _Address) -> None:
        if self._slots.acquire(blocking=False):
            handler, slots = self.RequestHandlerClass, self._slots
        elif self._refusers.acquire(blocking=False):
            handler, slots = self._refuse_handler, self._refusers
        else:  # beyond every bound (a flood): close at once, the only case a client may see a reset
            self.shutdown_request(request)
            return
        thread = threading.Thread(target=self._serve_one, args=(request, client_address, handler, slots),
                                  daemon=True)
        thread.start()

    def _serve_one(self, request: _Request, client_address: _Address,
                   handler: Callable[[_Request, _Address, RunnerServer], BaseRequestHandler],
                   slots: threading.BoundedSemaphore) -> None:
        if slots is self._refusers and self._slots.acquire(timeout=_SLOT_GRACE_S):
            # The slot a reply has just freed: that reply's thread had not released it yet when this connection
            # came (a client's next request follows its last reply at once). Without this short wait, one
            # sequential client on --max-connections 1 had 43 % of its requests refused.
            self._refusers.release()
            handler, slots = self._serve_handler, self._slots
        try:
            handler(request, client_address, self)
        except Exception:  # noqa: BLE001 - as socketserver does
            self.handle_error(request, client_address)
        finally:
            slots.release()   # the reply is sent: the slot is free while the connection closes
            self.shutdown_request(request)

    def shutdown_request(self, request: _Request) -> None:
        """Close after a lingering read: bytes the client sent that were not read (a refused or early-answered
        request) would make close() send a reset that destroys the reply still in flight."""
        if isinstance(request, socket.socket):   # always, on a stream server (a datagram server's is a pair)
            _linger(request)
        self.close_request(request)

    def handle_error(self, request: _Request, client_address: _Address) -> None:
        # a client that vanishes mid-request is routine for a server, not a traceback in its log
        log.info("connection from %s failed: %r", client_address[0], sys.exc_info()[1])

    def server_close(self) -> None:
        super().server_close()
        self.runner.cleanup()


def make_server(host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: Optional[str] = None,
                max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, workdir: Optional[str] = None,
                limits: Optional[Limits] = None) -> RunnerServer:
    """``limits`` sets every bound (``max_upload_mb`` is the upload bound alone, kept for callers)."""
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        raise WherryError(f"refusing to serve on {host} without a token: anyone on the network could run code paths "
                          "on this device", "pass --token-file FILE (or WHERRY_TOKEN), or bind to 127.0.0.1")
    if limits is None:
        limits = Limits(max_upload=int(max_upload_mb * 1024 * 1024))
    own = workdir is None
    if own:   # the temporary work directories of killed runners on this host (their uploads) go first
        leftovers.sweep(tempfile.gettempdir(), _WORKDIR_PREFIX)
    runner = Runner(workdir or str(leftovers.owned_tempdir(_WORKDIR_PREFIX)), token, limits, own)
    try:
        return RunnerServer((host, port), runner)
    except BaseException:
        runner.cleanup()
        raise


def _read_token(args: argparse.Namespace) -> Optional[str]:
    if args.token_file:
        try:
            with open(args.token_file) as fh:
                token = fh.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise WherryError(f"cannot read the token file {args.token_file}: {exc}",
                              "write the token on one line of a file only you can read (chmod 600)") from None
        if not token:
            raise WherryError(f"the token file {args.token_file} is empty", "write the token into it")
        return token
    return args.token or os.environ.get("WHERRY_TOKEN") or None


def _positive(text: str) -> float:
    """A limit of the runner: a positive finite number. NaN compares false with everything, so a timeout of
    nan was no timeout at all (slow clients and endless jobs kept for ever), and a size of nan a traceback."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (0 < value < math.inf):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive finite number")
    return value


def _request_log(path: Optional[str]) -> None:
    """The runner's log (requests, refusals, drops, clean-ups, errors with their traceback) on standard error
    and, with --log, in a file: the package's loggers at INFO whatever the command line's own logging level."""
    handlers: List[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if path:
        try:
            handlers.append(logging.FileHandler(path))
        except OSError as exc:
            raise WherryError(f"cannot write the log file {path}: {exc.strerror or exc}",
                              "pass a file in a directory you can write") from None
    package = logging.getLogger(__package__)
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        package.addHandler(handler)
    package.setLevel(logging.INFO)
    package.propagate = False   # not printed twice by the command line's own handler


def _stop(signum: int, frame: Optional[FrameType]) -> NoReturn:
    raise SystemExit(0)  # unwinds serve_forever, so the finally below removes the uploads


def main(argv: Optional[List[str]] = None) -> int:
    defaults = Limits()
    parser = argparse.ArgumentParser(prog="python -m wherry.runtimes serve",
                                     description="Serve this device's runtimes over HTTP (see runtimes/serve.py "
                                                 "and docs/security.md).")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need a token)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--token-file", metavar="FILE", help="file holding the bearer token (preferred)")
    parser.add_argument("--token", help="the bearer token (default: $WHERRY_TOKEN); note: other users of this "
                                        "machine can read it in `ps`: prefer --token-file or WHERRY_TOKEN")
    parser.add_argument("--max-upload-mb", type=_positive, default=DEFAULT_MAX_UPLOAD_MB,
                        help=f"largest request body (default {DEFAULT_MAX_UPLOAD_MB})")
    parser.add_argument("--max-bundle-mb", type=_positive, default=defaults.max_bundle >> 20,
                        help=f"most bytes one bundle may unpack to (default {defaults.max_bundle >> 20})")
    parser.add_argument("--max-arrays-mb", type=_positive, default=defaults.max_arrays >> 20,
                        help=f"most array data in one .npz: inputs, golden data, outputs (default "
                             f"{defaults.max_arrays >> 20})")
    parser.add_argument("--client-timeout", type=_positive, default=defaults.client_timeout, metavar="S",
                        help=f"drop a client silent this long (default {defaults.client_timeout:g} s)")
    parser.add_argument("--request-timeout", type=_positive, default=defaults.request_timeout, metavar="S",
                        help=f"drop a client whose request takes longer to arrive (default "
                             f"{defaults.request_timeout:g} s)")
    parser.add_argument("--header-timeout", type=_positive, default=defaults.header_timeout, metavar="S",
                        help=f"drop a client whose request line and headers take longer (default "
                             f"{defaults.header_timeout:g} s)")
    parser.add_argument("--job-timeout", type=_positive, default=defaults.job_timeout, metavar="S",
                        help=f"stop loading or running an artifact after this long (default "
                             f"{defaults.job_timeout:g} s)")
    parser.add_argument("--max-connections", type=int, default=defaults.max_connections,
                        help=f"requests served at once (default {defaults.max_connections})")
    parser.add_argument("--dir", help="where uploaded bundles are kept (default: a temporary directory)")
    parser.add_argument("--log", metavar="FILE",
                        help="also append the request log (one line per request, errors with their traceback) "
                             "to FILE; it always goes to standard error")
    args = parser.parse_args(argv)
    _request_log(args.log)
    limits = Limits(max_upload=int(args.max_upload_mb * (1 << 20)), max_bundle=int(args.max_bundle_mb * (1 << 20)),
                    max_arrays=int(args.max_arrays_mb * (1 << 20)), client_timeout=args.client_timeout,
                    request_timeout=args.request_timeout, header_timeout=args.header_timeout, job_timeout=args.job_timeout,
                    max_connections=max(1, args.max_connections))
    server = make_server(args.host, args.port, _read_token(args), workdir=args.dir, limits=limits)
    try:   # a SIGTERM right after the line below must still reach the clean-up in finally
        signal.signal(signal.SIGTERM, _stop)
        print(f"wherry runner on http://{args.host}:{server.server_address[1]} (Ctrl-C to stop)", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
