"""The browser device's page server with real HTTP requests and no browser (issue 27, finding 5): any
local process can find its port, so without the per-session secret it must serve nothing and take
no posted output or verdict."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from wherry.targets.web.server import PageServer

MODEL = b"\x08\x07onnx model bytes"


def _get(url: str, data: bytes = None):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST" if data else "GET"),
                                    timeout=10) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture()
def page(tmp_path):
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "ort.wasm.min.mjs").write_text("export const x = 1;")
    posted = []
    server = PageServer(tmp_path / "dist", {"/model/0.onnx": MODEL, "/job": b'{"tasks": []}'},
                        lambda path, query, body: posted.append((path, query, body)))
    with server:
        yield server, posted


def test_without_the_secret_nothing_is_served_and_nothing_taken(page):
    server, posted = page
    origin = server.url.split(server.secret)[0].rstrip("/")
    wrong = "A" * len(server.secret)
    for path in ("/", "/model/0.onnx", "/job", "/ort/ort.wasm.min.mjs", "/runner.js", f"/{wrong}/model/0.onnx",
                 f"/{server.secret[:-1]}/model/0.onnx", f"/model/{server.secret}/0.onnx", f"/{server.secret}"):
        status, body = _get(origin + path)
        assert status == 404 and MODEL not in body, path
    for path in ("/result/0", "/done", f"/{wrong}/result/0", "/output/0/y?type=float32&dims=1"):
        status, _ = _get(origin + path, json.dumps({"ok": True}).encode())
        assert status == 404, path
    assert posted == []


def test_with_the_secret_the_page_gets_everything(page):
    server, posted = page
    assert len(server.secret) >= 40 and server.url.endswith(f"/{server.secret}/")
    assert _get(server.url + "model/0.onnx") == (200, MODEL)
    assert _get(server.url + "ort/ort.wasm.min.mjs")[0] == 200
    status, body = _get(server.url)
    assert status == 200 and b'src="runner.js"' in body   # relative: the page never names the secret
    assert _get(server.url + "done", b'{"threads": 1}')[0] == 200
    assert posted == [("/done", {}, b'{"threads": 1}')]


def test_each_session_has_its_own_secret(tmp_path):
    first = PageServer(tmp_path, {}, lambda *a: None)
    second = PageServer(tmp_path, {}, lambda *a: None)
    try:
        assert first.secret != second.secret
    finally:
        for server in (first, second):
            server.httpd.server_close()
