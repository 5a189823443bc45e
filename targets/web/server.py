"""The page server: a stdlib HTTP server on 127.0.0.1 that serves the page, onnxruntime-web, the job
(models and inputs) and takes the page's results back.

Every response carries COOP/COEP headers: they make the page cross-origin isolated, which is what
lets onnxruntime-web's WebAssembly use more than one thread (without them it silently runs on one).

Any local process can find the port, so everything is served under a per-session secret path,
``http://127.0.0.1:PORT/<secret>/`` (256 random bits, compared in constant time): a request without it
gets 404 before its body is read, so another process can neither fetch the models and inputs nor
post a forged output or verdict. The page uses relative URLs only, so it never needs to know the secret.
"""
from __future__ import annotations

import hmac
import json
import logging
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Dict, Optional
from urllib.parse import parse_qs, urlparse

log = logging.getLogger(__name__)

PAGE_DIR = Path(__file__).resolve().parent / "page"
HOST = "127.0.0.1"   # the page server listens on loopback only
CONTENT_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
                 ".wasm": "application/wasm", ".json": "application/json", ".onnx": "application/octet-stream"}
ISOLATION_HEADERS = {"Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp",
                     "Cross-Origin-Resource-Policy": "same-origin", "Cache-Control": "no-store"}


class PageServer:
    """Serves ``files`` (URL path -> local file or bytes) and ``dist`` (onnxruntime-web's dist/ under /ort/);
    POSTs go to ``on_post(path, query, body)``."""

    def __init__(self, dist: Path, files: Dict[str, object], on_post: Callable[[str, dict, bytes], None]):
        self.dist, self.files, self.on_post = dist, dict(files), on_post
        self.secret = secrets.token_urlsafe(32)
        self.files.setdefault("/", PAGE_DIR / "index.html")
        self.files.setdefault("/runner.js", PAGE_DIR / "runner.js")
        self.httpd = ThreadingHTTPServer((HOST, 0), self._handler())
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="wherry-web-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.httpd.server_address[1]}/{self.secret}/"

    def local_path(self, request_path: str) -> Optional[str]:
        """The path below the secret prefix (``/`` for the page), or None when the secret is missing or wrong."""
        head, sep, rest = request_path.lstrip("/").partition("/")
        if not sep or not hmac.compare_digest(head.encode("utf-8", "surrogateescape"), self.secret.encode()):
            return None
        return "/" + rest

    def __enter__(self) -> "PageServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _lookup(self, path: str) -> Optional[bytes]:
        if path.startswith("/ort/"):
            name = path[len("/ort/"):]
            if "/" in name or name.startswith("."):
                return None
            local = self.dist / name
            return local.read_bytes() if local.is_file() else None
        source = self.files.get(path)
        if source is None:
            return None
        return source if isinstance(source, bytes) else Path(str(source)).read_bytes()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt, *args):  # the page's requests go to the debug log, not stderr
                log.debug("page server: " + fmt, *args)

            def _send(self, status: int, body: bytes, content_type: str = "text/plain") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in ISOLATION_HEADERS.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _refuse(self) -> None:
                # the same answer for every wrong path: nothing tells a prober it is near the secret
                self.close_connection = True
                self._send(HTTPStatus.NOT_FOUND, b"not found")

            def do_GET(self):
                path = server.local_path(urlparse(self.path).path)
                if path is None:
                    self._refuse()
                    return
                try:
                    body = server._lookup(path)
                except OSError as exc:
                    self._send(HTTPStatus.INTERNAL_SERVER_ERROR, str(exc).encode())
                    return
                if body is None:
                    self._send(HTTPStatus.NOT_FOUND, b"not found")
                    return
                suffix = Path(path).suffix if path != "/" else ".html"
                self._send(HTTPStatus.OK, body, CONTENT_TYPES.get(suffix, "application/octet-stream"))

            def do_POST(self):
                parsed = urlparse(self.path)
                path = server.local_path(parsed.path)
                if path is None:
                    self._refuse()   # before the body is read: a stranger's upload costs nothing
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    server.on_post(path, {k: v[-1] for k, v in parse_qs(parsed.query).items()}, body)
                except Exception as exc:  # noqa: BLE001 - a malformed report must not kill the server thread
                    log.warning("page server: cannot take %s: %s", parsed.path, exc)
                    self._send(HTTPStatus.BAD_REQUEST, json.dumps({"error": str(exc)}).encode(), "application/json")
                    return
                self._send(HTTPStatus.OK, b"{}", "application/json")

        return Handler
