"""The HTTP runner: `python -m wherry.runtimes serve` on a device, so a host can check bundles there.

Standard library only (http.server), numpy and one backend on the device. Protocol (JSON unless noted;
errors are ``{"error": message, "hint": ...}`` with a 4xx/5xx status, and the server keeps serving):

    GET  /info                        this device (arch, CPU, OS, Python, backends)
    POST /bundles                     body: a bundle as .tar.gz -> {"id": ...}   (size-limited)
    POST /bundles/<id>/check          -> {"ok": bool, "report": CheckReport JSON, "table": text}
    POST /bundles/<id>/run?artifact=F body: .npz of inputs -> .npz of outputs (application/octet-stream)
    POST /run?bundle=<id>&artifact=F  the same, the bundle named in the query
    DELETE /bundles/<id>              remove an uploaded bundle

Safety: binds 127.0.0.1 unless told otherwise, and then requires a token (``Authorization: Bearer
<token>``); uploads are size-limited; archive members must be plain files or directories inside the
bundle (no absolute paths, no ``..``, no links); .npz bodies are read without unpickling; every
check runs artifacts in isolated child processes, so a crashing backend is an error reply.
"""
from __future__ import annotations

import argparse
import importlib
import io
import json
import logging
import os
import shutil
import tarfile
import tempfile
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath
from typing import Optional
from urllib.parse import parse_qs, urlparse

from .errors import InputError, WherryError

log = logging.getLogger(__name__)

DEFAULT_PORT = 8765
DEFAULT_MAX_UPLOAD_MB = 512
_DRAIN_LIMIT = 64 * 1024 * 1024


class HttpError(Exception):
    def __init__(self, status: int, message: str, hint: Optional[str] = None):
        super().__init__(message)
        self.status, self.message, self.hint = status, message, hint


def safe_extract(data: bytes, dest: str) -> str:
    """Unpack a bundle archive, refusing anything that could land outside ``dest``; returns the bundle root."""
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:*")
        members = archive.getmembers()
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise HttpError(400, f"the upload is not a readable tar archive ({exc})", "send the bundle as .tar.gz")
    for member in members:
        path = PurePosixPath(member.name)
        if path.is_absolute() or ".." in path.parts:
            raise HttpError(400, f"archive member {member.name!r} points outside the bundle",
                            "archive the bundle directory with relative paths")
        if not (member.isfile() or member.isdir()):
            raise HttpError(400, f"archive member {member.name!r} is not a plain file or directory",
                            "bundles hold only files and directories (no links or devices)")
    for member in members:
        target = os.path.join(dest, *PurePosixPath(member.name).parts)
        if member.isdir():
            os.makedirs(target, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with archive.extractfile(member) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
    roots = {p for p in os.listdir(dest)}
    if "manifest.json" in roots:
        return dest
    if len(roots) == 1 and os.path.isfile(os.path.join(dest, next(iter(roots)), "manifest.json")):
        return os.path.join(dest, next(iter(roots)))
    raise HttpError(400, "the archive holds no bundle (no manifest.json at its top)",
                    "archive the directory `wherry convert` wrote")


class Runner:
    """State of one server: where uploads go, the limits, the token."""

    def __init__(self, workdir: str, token: Optional[str], max_upload: int):
        self.workdir, self.token, self.max_upload = workdir, token, max_upload
        self.bundles = {}
        self.lock = threading.Lock()

    def bundle(self, bundle_id: str) -> str:
        with self.lock:
            if bundle_id not in self.bundles:
                raise HttpError(404, f"no bundle {bundle_id!r} on this device", "upload it first: POST /bundles")
            return self.bundles[bundle_id]


# (method, path pattern) -> handler method; "*" matches one path segment (a bundle id)
_ROUTES = {("get", ("info",)): "_get_info",
           ("post", ("bundles",)): "_post_bundles",
           ("post", ("bundles", "*", "check")): "_post_check",
           ("post", ("bundles", "*", "run")): "_post_run",
           ("post", ("run",)): "_post_run",
           ("delete", ("bundles", "*")): "_delete_bundle"}


def _route(method: str, parts) -> Optional[str]:
    for (verb, pattern), handler in _ROUTES.items():
        if verb == method and len(pattern) == len(parts) and all(p in ("*", q) for p, q in zip(pattern, parts)):
            return handler
    return None


def make_handler(runner: Runner):
    class Handler(BaseHTTPRequestHandler):
        server_version = "wherry-runner/1"

        def log_message(self, fmt, *args):  # through logging, not stderr prints
            log.info("%s %s", self.address_string(), fmt % args)

        # ------------------------------------------------------------------ plumbing
        def _reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data) -> None:
            self._reply(status, json.dumps(data).encode())

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            if length > runner.max_upload:
                # Read (and drop) a moderately oversized body so the client, still sending, gets this
                # answer instead of a broken pipe; beyond that bound just close the connection.
                if length <= runner.max_upload + _DRAIN_LIMIT:
                    remaining = length
                    while remaining > 0:
                        chunk = self.rfile.read(min(remaining, 1 << 20))
                        if not chunk:
                            break
                        remaining -= len(chunk)
                self.close_connection = True
                raise HttpError(413, f"upload of {length} bytes exceeds this runner's limit of {runner.max_upload}",
                                "start the runner with a larger --max-upload-mb")
            return self.rfile.read(length)

        def _handle(self, method: str) -> None:
            try:
                if runner.token and self.headers.get("Authorization") != f"Bearer {runner.token}":
                    raise HttpError(401, "missing or wrong token", "send Authorization: Bearer <token>")
                url = urlparse(self.path)
                parts = [p for p in url.path.split("/") if p]
                route = _route(method, parts)
                if route is None:
                    raise HttpError(404, f"no such endpoint: {method.upper()} {url.path}",
                                    "see the protocol in runtimes/serve.py")
                getattr(self, route)(parts, parse_qs(url.query))
            except HttpError as exc:
                self._json(exc.status, {"error": exc.message, "hint": exc.hint})
            except WherryError as exc:
                self._json(400, {"error": exc.message, "hint": exc.hint})
            except Exception as exc:  # noqa: BLE001 - a request must never take the runner down
                log.exception("request failed")
                self._json(500, {"error": f"{type(exc).__name__}: {exc}", "hint": "see the runner's log"})

        def do_GET(self):  # noqa: N802 - http.server's naming
            self._handle("get")

        def do_POST(self):  # noqa: N802
            self._handle("post")

        def do_DELETE(self):  # noqa: N802
            self._handle("delete")

        # ------------------------------------------------------------------ endpoints
        def _get_info(self, parts, query):
            from .cli import device_info
            self._json(200, device_info())

        def _post_bundles(self, parts, query):
            data = self._body()
            bundle_id = uuid.uuid4().hex[:12]
            dest = os.path.join(runner.workdir, bundle_id)
            os.makedirs(dest)
            try:
                root = safe_extract(data, dest)
            except BaseException:
                shutil.rmtree(dest, ignore_errors=True)
                raise
            with runner.lock:
                runner.bundles[bundle_id] = root
            self._json(201, {"id": bundle_id})

        def _post_check(self, parts, query):
            runtimes = importlib.import_module(__package__)  # the package itself: open, check, available
            report = runtimes.check(runner.bundle(parts[1]), isolate=True)
            self._json(200, {"ok": report.ok, "report": report.to_json(), "table": report.table()})

        def _post_run(self, parts, query):
            import numpy as np

            runtimes = importlib.import_module(__package__)  # the package itself: open, check, available
            from .npz import load_npz
            artifact = (query.get("artifact") or [None])[0]
            bundle_id = parts[1] if len(parts) == 3 else (query.get("bundle") or [None])[0]
            if not bundle_id:
                raise HttpError(400, "POST /run needs ?bundle=<id>", "upload the bundle first: POST /bundles")
            root = runner.bundle(bundle_id)  # an unknown bundle is a 404 before the body is read
            with tempfile.NamedTemporaryFile(suffix=".npz") as tmp:
                tmp.write(self._body())
                tmp.flush()
                try:
                    feeds = load_npz(tmp.name)
                except InputError as exc:
                    raise HttpError(400, exc.message, exc.hint)
            with runtimes.open(root, artifact=artifact, isolate=True) as session:
                outputs = session.run(feeds)
            buffer = io.BytesIO()
            np.savez(buffer, **outputs)
            self._reply(200, buffer.getvalue(), "application/octet-stream")

        def _delete_bundle(self, parts, query):
            root = runner.bundle(parts[1])
            with runner.lock:
                runner.bundles.pop(parts[1], None)
            shutil.rmtree(os.path.join(runner.workdir, parts[1]), ignore_errors=True)
            self._json(200, {"deleted": parts[1], "path": root})

    return Handler


def make_server(host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: Optional[str] = None,
                max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB, workdir: Optional[str] = None) -> ThreadingHTTPServer:
    if host not in ("127.0.0.1", "localhost", "::1") and not token:
        raise WherryError(f"refusing to serve on {host} without a token: anyone on the network could run code paths "
                          "on this device", "pass --token SECRET (or WHERRY_TOKEN), or bind to 127.0.0.1")
    runner = Runner(workdir or tempfile.mkdtemp(prefix="wherry-runner-"), token, int(max_upload_mb * 1024 * 1024))
    server = ThreadingHTTPServer((host, port), make_handler(runner))
    server.daemon_threads = True
    return server


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wherry.runtimes serve",
                                     description="Serve this device's runtimes over HTTP (see runtimes/serve.py).")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; others need --token)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--token", default=os.environ.get("WHERRY_TOKEN"), help="required bearer token")
    parser.add_argument("--max-upload-mb", type=float, default=DEFAULT_MAX_UPLOAD_MB)
    parser.add_argument("--dir", help="where uploaded bundles are kept (default: a temporary directory)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    server = make_server(args.host, args.port, args.token, args.max_upload_mb, args.dir)
    print(f"wherry runner on http://{args.host}:{server.server_address[1]} (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
