"""The HTTP runner under load (issue 27, findings 3 and 8): a refusal is a clean 503 the client can read
and retry, never a reset; slots are freed as soon as a reply is sent; slow clients are dropped by a header
deadline; the client retries 503s and resets with backoff, and a finished check is never thrown away
because its clean-up DELETE was refused. Every runner here is on 127.0.0.1 and stops itself."""
from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.hostile_fixtures import RunnerProcess, serve_in_thread, stop, tar_bytes, wait_until
from support.runtime_fixtures import copy_bundle, onnx_only, rt_bundle, rt_feeds, rt_models, rt_reference  # noqa: F401
from wherry.runtimes.serve import Limits
from wherry.targets.devices import DeviceError
from wherry.targets.devices.http import HttpDevice


def _hold(url: str, count: int):
    host, port = url.rsplit("/", 1)[-1].split(":")
    socks = [socket.create_connection((host, int(port)), timeout=30) for _ in range(count)]
    time.sleep(0.3)
    return socks


def test_a_refused_upload_is_read_and_answered_503_not_reset():
    server, url = serve_in_thread(limits=Limits(max_connections=1, client_timeout=5))
    try:
        held = _hold(url, 1)   # the one slot is taken: the next request is refused
        request = urllib.request.Request(url + "/bundles", data=b"\0" * (4 << 20), method="POST")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=30)
        assert info.value.code == 503
        assert info.value.headers["Retry-After"] == "1"
        assert "busy" in json.loads(info.value.read())["error"]
        for sock in held:
            sock.close()
    finally:
        stop(server)


def test_slow_headers_are_dropped_after_the_header_timeout():
    """A client trickling header lines (slowloris) is dropped after --header-timeout, though each line
    comes well within the idle timeout and the whole-request limit is long."""
    server, url = serve_in_thread(limits=Limits(header_timeout=1.0, client_timeout=5.0, request_timeout=600.0,
                                                max_connections=32))
    threads_before = threading.active_count()
    host, port = "127.0.0.1", server.server_address[1]
    try:
        socks = [socket.create_connection((host, port), timeout=10) for _ in range(20)]
        for sock in socks:
            sock.sendall(b"GET /info HTTP/1.0\r\n")
        start, open_socks = time.monotonic(), list(socks)
        while open_socks and time.monotonic() - start < 8:
            for sock in list(open_socks):
                try:
                    sock.sendall(b"X-a: b\r\n")
                    sock.setblocking(False)
                    if sock.recv(1024) == b"":
                        open_socks.remove(sock)
                except BlockingIOError:
                    pass
                except OSError:
                    open_socks.remove(sock)
                finally:
                    sock.setblocking(True)
            time.sleep(0.3)
        assert open_socks == [] and time.monotonic() - start < 5
        for sock in socks:
            sock.close()
        assert wait_until(lambda: threading.active_count() <= threads_before, 5)
    finally:
        stop(server)


def test_sequential_checks_on_a_one_connection_runner_all_complete(onnx_only):
    """With --max-connections 1 one client's requests follow each other closely: the DELETE after a check
    used to get a 503 and throw the finished check away (exit 2, no table)."""
    server, url = serve_in_thread(limits=Limits(max_connections=1))
    try:
        device = HttpDevice(url)
        for _ in range(6):
            result = device.run(["check", str(onnx_only)], None)
            assert result.exit_code == 0, result.stderr
            assert "model.onnx" in result.stdout and "passed" in result.stdout
    finally:
        stop(server)


def test_one_sequential_client_is_never_refused_on_a_one_connection_runner():
    """A client's next request follows its last reply at once, often before the reply's thread has freed its
    slot: 128 of 300 sequential requests got a 503 (each retried after Retry-After, a second lost)."""
    server, url = serve_in_thread(limits=Limits(max_connections=1))
    try:
        statuses = []
        for _ in range(100):
            try:
                with urllib.request.urlopen(url + "/info", timeout=30) as response:
                    statuses.append(response.status)
            except urllib.error.HTTPError as exc:
                statuses.append(exc.code)
        assert statuses.count(503) == 0, statuses
    finally:
        stop(server)


def test_a_refused_cleanup_is_a_warning_not_the_commands_error(onnx_only):
    server, url = serve_in_thread(limits=Limits(max_connections=4))
    try:
        device = HttpDevice(url)
        device.retry_for = 0.5
        real = device._request_once

        def refuse_delete(method, path, body, timeout, headers):
            if method == "DELETE":
                held = _hold(url, 4)   # every slot taken: the DELETE gets a (clean) 503
                try:
                    return real(method, path, body, timeout, headers)
                finally:
                    for sock in held:
                        sock.close()
            return real(method, path, body, timeout, headers)

        device._request_once = refuse_delete
        result = device.run(["check", str(onnx_only)], None)
        assert result.exit_code == 0 and "passed" in result.stdout
        assert "warning: could not remove bundle" in result.stderr and "busy" in result.stderr
    finally:
        stop(server)


def test_retries_end_in_one_readable_error():
    server, url = serve_in_thread(limits=Limits(max_connections=1, client_timeout=10))
    try:
        held = _hold(url, 1)
        device = HttpDevice(url)
        device.retry_for = 2.5   # each refusal comes after the runner's half-second wait for a free slot
        start = time.monotonic()
        with pytest.raises(DeviceError, match=r"stayed busy \(503\)"):
            device.protocol()
        assert 1.0 < time.monotonic() - start < 6
        for sock in held:
            sock.close()
    finally:
        stop(server)


def _fake_runner(replies: dict):
    """An HTTP server that answers each path with a canned (status, body): a runner gone wrong, or
    something else listening at the board's address."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            key = next((k for k in replies if self.path.endswith(k)), None)
            status, body = replies.get(key, (404, b"{}"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_DELETE = _answer  # noqa: N815 - http.server's naming

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


INFO = (200, b'{"protocol": 2}')


@pytest.mark.parametrize("replies, expected", [
    ({"/info": (200, b"[1, 2]")}, "GET /info: it is not a JSON object"),
    ({"/info": (200, b'{"protocol": "two"}')}, "GET /info: its protocol is not a number"),
    ({"/info": INFO, "/bundles": (201, b"{}")}, "POST /bundles: it lacks id"),
    ({"/info": INFO, "/bundles": (201, b'{"id": "../x"}')}, "not a plain name"),
    ({"/info": INFO, "/bundles": (201, b'{"id": "abc"}'), "/check": (200, b'{"ok": true}')},
     "POST check: it lacks report, table"),
    ({"/info": INFO, "/bundles": (201, b'{"id": "abc"}'), "/check": (200, b"<html>")}, "POST check: it is not JSON"),
    ({"/info": INFO, "/bundles": (500, b"<html>oops</html>")}, "refused POST /bundles: HTTP Error 500"),
])
def test_a_malformed_runner_reply_is_one_error_not_a_crash(onnx_only, replies, expected):
    """One malformed reply used to abort a whole fleet job with KeyError: 'id'."""
    server, url = _fake_runner(replies)
    try:
        with pytest.raises(DeviceError) as info:
            HttpDevice(url).run(["check", str(onnx_only)], None)
        assert expected in info.value.message
    finally:
        stop(server)


def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(onnx_only, monkeypatch):
    """urllib follows a 302 to any host and sends the Authorization header along: a runner address that
    redirects (or something else listening there) would hand WHERRY_TOKEN to an address nobody listed."""
    thief, thief_url = _fake_runner({"/info": INFO, "/bundles": (201, b'{"id": "abc"}')})
    seen = []
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self):
            seen.append(self.path)
            self.send_response(302)
            self.send_header("Location", thief_url.replace("127.0.0.1", "localhost") + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_DELETE = _answer  # noqa: N815 - http.server's naming

    redirect = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=redirect.serve_forever, daemon=True).start()
    stolen = []
    thief.RequestHandlerClass.handle_one_request = _recording(thief.RequestHandlerClass.handle_one_request, stolen)
    monkeypatch.setenv("WHERRY_TOKEN", "board-secret")
    try:
        with pytest.raises(DeviceError) as info:
            HttpDevice(f"http://127.0.0.1:{redirect.server_address[1]}").run(["check", str(onnx_only)], None)
        assert stolen == [], stolen
        assert seen == ["/info"]
        assert "redirect (302)" in info.value.message and "not followed" in info.value.message
    finally:
        stop(redirect)
        stop(thief)


def _recording(handle, seen: list):
    def handle_one_request(self):
        handle(self)
        if getattr(self, "headers", None) is not None:
            seen.append(self.headers.get("Authorization"))
    return handle_one_request


@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:abc", "Port could not be cast"),   # was retried for 120 s as a "dropped connection"
    ("http://127.0.0.1:99999", "Port out of range"),
    ("http://[::1", "Invalid IPv6 URL"),                   # was a ValueError traceback
    ("http://", "no host"),
])
def test_a_runner_address_that_is_no_address_is_one_error_at_once(url, expected):
    with pytest.raises(DeviceError) as raised:
        HttpDevice(url)
    assert raised.value.message.startswith(f"bad http device {url!r}") and expected in raised.value.message


CLIENTS = 64


@pytest.mark.slow
def test_64_concurrent_clients_all_complete(onnx_only):
    """64 clients upload, check and delete at once against one runner (default limits: 16 connections,
    one check at a time): every check completes; no reset or refusal reaches a client as an error."""
    runner = RunnerProcess()
    archive = tar_bytes(onnx_only)
    try:
        def client(_):
            device = HttpDevice(runner.url)
            device.retry_for = 300
            device.protocol()
            _, body, _ = device._request("POST", "/bundles", archive)
            bundle_id = json.loads(body)["id"]
            _, reply, _ = device._request("POST", f"/bundles/{bundle_id}/check", b"{}",
                                          headers={"Content-Type": "application/json"})
            assert device._forget(bundle_id) == ""
            return json.loads(reply)["ok"]

        start = time.monotonic()
        with ThreadPoolExecutor(CLIENTS) as pool:
            results = list(pool.map(client, range(CLIENTS)))
        elapsed = time.monotonic() - start
        print(f"{CLIENTS} concurrent checks in {elapsed:.1f} s")
        assert results == [True] * CLIENTS
    finally:
        assert runner.stop() == 0
