"""The HTTP runner over loopback: a full check round trip, and every kind of bad request refused
while the server keeps serving."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from support.paths import REPO
from wherry.convert.example import INPUTS, MODEL
from wherry.runtimes.errors import WherryError
from wherry.runtimes.serve import make_server


@pytest.fixture(scope="module")
def bundles(wherry, tmp_path_factory):
    out = tmp_path_factory.mktemp("serve")
    # one convert call, one golden run for both targets
    wherry("convert", MODEL, "--inputs", INPUTS, "-t", "rpi4", "-t", "desktop-x86_64", "-o", out, check=0)
    return out


@pytest.fixture(scope="module")
def bundle(bundles):
    return bundles / "digits_cnn.rpi4"


def _serve(**kwargs):
    server = make_server("127.0.0.1", 0, **kwargs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture()
def server():
    srv, url = _serve(max_upload_mb=2)
    yield url
    srv.shutdown()
    srv.server_close()


def _request(url, method="GET", body=None, token=None):
    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _tar(bundle_dir=None, extra=None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        if bundle_dir is not None:
            archive.add(bundle_dir, arcname=bundle_dir.name)
        for info, data in extra or []:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def _first(npz_bytes):
    outputs = np.load(io.BytesIO(npz_bytes))
    return outputs[outputs.files[0]]


def _still_serving(url):
    status, body = _request(url + "/info")
    assert status == 200 and "backends" in json.loads(body)


def test_full_check_round_trip_through_the_cli(server, bundle):
    proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "check", str(bundle), "--device", server, "--json"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    results = {a["file"]: a for a in json.loads(proc.stdout)["artifacts"]}
    assert results["model.onnx"]["status"] == "passed"
    assert results["model.arm.nb"]["status"] == "not verifiable here"


def test_run_returns_outputs_and_malformed_npz_is_refused(server, bundle):
    status, body = _request(server + "/bundles", "POST", _tar(bundle))
    assert status == 201
    bundle_id = json.loads(body)["id"]
    feeds = io.BytesIO()
    np.savez(feeds, x=np.load(INPUTS)["x"][:2])
    status, body = _request(f"{server}/bundles/{bundle_id}/run?artifact=model.onnx", "POST", feeds.getvalue())
    assert status == 200
    outputs = np.load(io.BytesIO(body))
    assert outputs[outputs.files[0]].shape == (2, 10)
    status, body = _request(f"{server}/bundles/{bundle_id}/run", "POST", b"this is not an npz")
    assert status == 400 and "npz" in json.loads(body)["error"]
    pickled = io.BytesIO()
    np.savez(pickled, x=np.array([{"a": 1}], dtype=object))
    status, body = _request(f"{server}/bundles/{bundle_id}/run", "POST", pickled.getvalue())
    assert status == 400 and "pickle" in json.loads(body)["error"]
    _still_serving(server)


def test_token_is_required_and_checked(bundle):
    srv, url = _serve(token="s3cret")
    try:
        status, body = _request(url + "/info")
        assert status == 401 and "token" in json.loads(body)["error"]
        assert _request(url + "/info", token="wrong")[0] == 401
        assert _request(url + "/info", token="s3cret")[0] == 200
    finally:
        srv.shutdown()
        srv.server_close()
    with pytest.raises(WherryError, match="without a token"):
        make_server("0.0.0.0", 0)


def test_oversize_upload_is_refused(server):
    status, body = _request(server + "/bundles", "POST", b"\0" * (3 * 1024 * 1024))
    assert status == 413 and "exceeds" in json.loads(body)["error"]
    _still_serving(server)


def test_huge_declared_upload_is_refused_without_reading_it(server):
    import socket
    from urllib.parse import urlparse

    addr = urlparse(server)
    with socket.create_connection((addr.hostname, addr.port), timeout=30) as sock:
        sock.sendall(b"POST /bundles HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n")
        reply = sock.recv(4096).decode(errors="replace")
    assert reply.startswith("HTTP/1.0 413") or reply.startswith("HTTP/1.1 413"), reply
    _still_serving(server)


def test_path_traversal_and_links_are_refused(server, tmp_path):
    evil = tarfile.TarInfo("../../evil.txt")
    evil.size = 4
    status, body = _request(server + "/bundles", "POST", _tar(extra=[(evil, b"boom")]))
    assert status == 400 and "outside the bundle" in json.loads(body)["error"]
    link = tarfile.TarInfo("b/manifest.json")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc/passwd"
    status, body = _request(server + "/bundles", "POST", _tar(extra=[(link, None)]))
    assert status == 400 and "not a plain file" in json.loads(body)["error"]
    status, body = _request(server + "/bundles", "POST", b"not a tar at all")
    assert status == 400
    _still_serving(server)


def test_unknown_bundle_and_endpoint(server):
    assert _request(server + "/bundles/nope/check", "POST")[0] == 404
    assert _request(server + "/admin", "GET")[0] == 404
    _still_serving(server)


def test_run_by_query_and_its_errors(server, bundle):
    status, body = _request(server + "/bundles", "POST", _tar(bundle))
    bundle_id = json.loads(body)["id"]
    feeds = io.BytesIO()
    np.savez(feeds, x=np.load(INPUTS)["x"][:1])
    status, body = _request(f"{server}/run?bundle={bundle_id}&artifact=model.onnx", "POST", feeds.getvalue())
    assert status == 200 and _first(body).shape == (1, 10)
    status, body = _request(f"{server}/run", "POST", feeds.getvalue())
    assert status == 400 and "bundle" in json.loads(body)["error"]
    status, body = _request(f"{server}/run?bundle=nope", "POST", feeds.getvalue())
    assert status == 404
    # the arm .nb has no runtime on this x86 runner: a clear error, not a crash
    status, body = _request(f"{server}/run?bundle={bundle_id}&artifact=model.arm.nb", "POST", feeds.getvalue())
    assert 400 <= status < 600 and json.loads(body)["error"]
    _still_serving(server)


def test_crashing_backend_is_isolated(server, bundles, tmp_path):
    """A truncated Paddle Lite model aborts Lite for real; the check reports it and the runner lives on."""
    import shutil

    from support.runtime_fixtures import rehash

    bad = tmp_path / "digits_cnn.desktop-x86_64"
    shutil.copytree(bundles / "digits_cnn.desktop-x86_64", bad)
    nb = bad / "model.x86.nb"
    nb.write_bytes(nb.read_bytes()[:5000])
    rehash(bad, "model.x86.nb")
    status, body = _request(server + "/bundles", "POST", _tar(bad))
    assert status == 201
    status, body = _request(f"{server}/bundles/{json.loads(body)['id']}/check", "POST")
    assert status == 200
    reply = json.loads(body)
    results = {a["file"]: a for a in reply["report"]["artifacts"]}
    assert not reply["ok"]
    assert results["model.x86.nb"]["status"] == "failed" and "crashed" in results["model.x86.nb"]["reason"]
    assert results["model.onnx"]["status"] == "passed"
    _still_serving(server)
