"""Hostile bundles, uploads and shapes (issue 11): one test per finding, each of which failed before
the fix. HTTP tests only talk to 127.0.0.1 runners they start themselves, each bounded in time."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import threading
import time
import zipfile

import numpy as np
import pytest

from wherry import runtimes
from support.paths import REPO
from wherry.convert.example import INPUTS, MODEL
from support.hostile_fixtures import (PY, RunnerProcess, alive, children, loop_bundle, nest_folders, npz_bomb, raw_request,
                                      request, reseal, run_measured, serve_in_thread, still_serving, stop, tar_bytes,
                                      wait_until)
from support.runtime_fixtures import copy_bundle, rt_bundle, rt_feeds, rt_models, rt_reference  # noqa: F401
from wherry.runtimes.bundle import content_hash
from wherry.runtimes.npz import load_npz
from wherry.runtimes.serve import Limits


def _manifest(bundle):
    return json.loads((bundle / "manifest.json").read_text())


def _write_manifest(bundle, data):
    (bundle / "manifest.json").write_text(json.dumps(data, indent=2))


def _cli(*args):
    """`python -m wherry.runtimes` in a child process, as a user runs it."""
    return subprocess.run([PY, "-m", "wherry.runtimes", *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          timeout=300)


def _one_error(proc, prog="runtimes"):
    """Exit 2 with one error line (and maybe a hint), never a traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [i for i, ln in enumerate(lines) if ln.startswith(f"{prog}: error: ")]
    assert len(errors) == 1 and all(ln.startswith("  hint: ") for ln in lines[errors[0] + 1:]), lines
    return lines[errors[0]]


@pytest.fixture()
def onnx_only(rt_bundle, tmp_path):
    """The tiny CNN bundle with only its ONNX artifact (quick to check, runs anywhere)."""
    bundle = copy_bundle(rt_bundle, tmp_path / "b")
    data = _manifest(bundle)
    data["artifacts"] = [a for a in data["artifacts"] if a["file"] == "model.onnx"]
    _write_manifest(bundle, data)
    return bundle


# ------------------------------------------------------------------ 1. paths outside the bundle

@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_1_artifact_outside_the_bundle_is_refused(onnx_only, tmp_path, how):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.move(onnx_only / "model.onnx", outside / "model.onnx")  # the only copy lives outside, same hash
    data = _manifest(onnx_only)
    if how == "absolute":
        data["artifacts"][0]["file"] = str(outside / "model.onnx")
    elif how == "dotdot":
        data["artifacts"][0]["file"] = "../outside/model.onnx"
    else:
        os.symlink(outside / "model.onnx", onnx_only / "model.onnx")
    _write_manifest(onnx_only, data)
    proc = _cli("check", onnx_only, "--json")
    assert proc.returncode in (1, 2) and '"passed"' not in proc.stdout
    text = proc.stdout + proc.stderr
    assert "inside the bundle" in text and "Traceback" not in text


@pytest.mark.parametrize("key", ["inputs", "outputs"])
def test_1_golden_outside_the_bundle_is_refused(onnx_only, tmp_path, key):
    outside = tmp_path / "elsewhere.npz"
    shutil.copy(onnx_only / "golden" / f"{key}.npz", outside)
    data = _manifest(onnx_only)
    data["golden"][key] = "../elsewhere.npz"
    _write_manifest(onnx_only, data)
    assert "inside the bundle" in _one_error(_cli("check", onnx_only))


def test_1_messages_do_not_tell_which_server_paths_exist(onnx_only, tmp_path):
    """Over HTTP, a manifest naming a path outside gets the same answer whether that path exists or not."""
    server, url = serve_in_thread(max_upload_mb=8)
    try:
        replies = []
        for target in ("../../../../../../etc/passwd", "../../../../../../etc/no-such-file"):
            data = _manifest(onnx_only)
            data["golden"]["outputs"] = target
            _write_manifest(onnx_only, data)
            status, body = request(url + "/bundles", "POST", tar_bytes(onnx_only))
            assert status == 201
            bundle_id = json.loads(body)["id"]
            status, body = request(f"{url}/bundles/{bundle_id}/check", "POST")
            replies.append((status, json.loads(body)["error"]))
        assert replies[0][0] == 400 and "inside the bundle" in replies[0][1]
        assert replies[0][1].replace("passwd", "X") == replies[1][1].replace("no-such-file", "X")
        still_serving(url)
    finally:
        stop(server)


# ------------------------------------------------------------------ 2. Content-Length

@pytest.mark.parametrize("length", ["-1", "abc", "1e3", "0x10", " ", "5, 5"])
def test_2_bad_content_length_is_400_and_never_read_unbounded(length):
    server, url = serve_in_thread(max_upload_mb=1)
    try:
        start = time.monotonic()
        status, _ = raw_request(url, f"POST /bundles HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n".encode()
                                + b"x" * 1000, half_close=False, timeout=20)
        assert status == 400 and time.monotonic() - start < 10
        status, _ = raw_request(url, b"POST /bundles HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                                     b"Content-Length: 6\r\n\r\nxxxxxx")
        assert status == 400
        status, _ = raw_request(url, b"POST /bundles HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     b"5\r\nxxxxx\r\n0\r\n\r\n")
        assert status == 411
        still_serving(url)
    finally:
        stop(server)


# ------------------------------------------------------------------ 3. compression bombs

def _zero_tar(size: int, members: int = 1) -> bytes:
    class Zeros(io.RawIOBase):
        def __init__(self, n):
            self.left = n

        def readable(self):
            return True

        def readinto(self, b):
            n = min(len(b), self.left)
            b[:n] = bytes(n)
            self.left -= n
            return n

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        info = tarfile.TarInfo("b/manifest.json")
        info.size = 2
        archive.addfile(info, io.BytesIO(b"{}"))
        for i in range(members):
            info = tarfile.TarInfo(f"b/{i}.bin")
            info.size = size
            archive.addfile(info, io.BufferedReader(Zeros(size)))
    return buffer.getvalue()


def test_3_tar_bomb_and_member_flood_are_refused_within_the_limits(tmp_path):
    work = tmp_path / "work"
    limits = Limits(max_upload=8 << 20, max_bundle=32 << 20, max_members=1000)
    server, url = serve_in_thread(workdir=str(work), limits=limits)
    try:
        bomb = _zero_tar(128 << 20)  # 128 MiB of zeros in ~130 KB
        assert len(bomb) < 1 << 20
        status, body = request(url + "/bundles", "POST", bomb)
        assert status == 413 and "unpacks to more than 32 MiB" in json.loads(body)["error"]
        flood = _zero_tar(0, members=5000)
        status, body = request(url + "/bundles", "POST", flood)
        assert status == 413 and "more than 1000 members" in json.loads(body)["error"]
        left = sum(f.stat().st_size for f in work.rglob("*") if f.is_file())
        assert left == 0, "a refused upload leaves nothing behind"
        still_serving(url)
    finally:
        stop(server)


def _npz_liar(elements: int) -> bytes:
    """An .npz whose header declares ``elements`` floats but holds 16 bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        with archive.open("x.npy", "w") as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (elements,)})
            fh.write(bytes(16))
    return buffer.getvalue()


def test_3_npz_bombs_to_run_keep_the_runner_small(onnx_only):
    runner = RunnerProcess("--max-arrays-mb", "64")
    try:
        status, body = request(runner.url + "/bundles", "POST", tar_bytes(onnx_only))
        bundle_id = json.loads(body)["id"]
        before = runner.peak_rss_mb()
        for bomb in (npz_bomb(1 << 30), _npz_liar(10 ** 12)):
            status, body = request(f"{runner.url}/bundles/{bundle_id}/run", "POST", bomb)
            assert status == 400, body
            assert "limit" in json.loads(body)["error"] or "declares shape" in json.loads(body)["error"]
        assert runner.peak_rss_mb() - before < 100, "bounded by --max-arrays-mb, never the declared size"
        still_serving(runner.url)
    finally:
        runner.stop()


def test_3_golden_npz_bomb_does_not_blow_up_check(onnx_only):
    (onnx_only / "golden" / "outputs.npz").write_bytes(npz_bomb(3 << 30))  # 3 GiB of zeros in 3 MB
    reseal(onnx_only)
    proc, peak_mb = run_measured([PY, "-m", "wherry.runtimes", "check", onnx_only])
    assert "limit here is 2048 MiB" in _one_error(proc)
    assert peak_mb < 400, peak_mb
    (onnx_only / "golden" / "outputs.npz").write_bytes(_npz_liar(10 ** 12))
    reseal(onnx_only)
    assert "declares shape [1000000000000]" in _one_error(_cli("check", onnx_only))


# ------------------------------------------------------------------ 4. timeouts

def test_4_slow_clients_are_dropped_and_connections_bounded():
    limits = Limits(client_timeout=1.0, request_timeout=3.0, max_connections=4)
    server, url = serve_in_thread(limits=limits)
    host, port = "127.0.0.1", server.server_address[1]
    threads_before = threading.active_count()
    try:
        # four silent clients take every slot: a fifth is told 503 at once
        silent = [socket.create_connection((host, port), timeout=20) for _ in range(4)]
        time.sleep(0.3)
        status, _ = raw_request(url, b"GET /info HTTP/1.0\r\n\r\n", timeout=5)
        assert status == 503
        # a silent client is dropped after client_timeout
        start = time.monotonic()
        for sock in silent:
            assert sock.recv(1024) == b""
        assert time.monotonic() - start < 5
        # a client trickling its headers is dropped after request_timeout
        trickle = socket.create_connection((host, port), timeout=20)
        start = time.monotonic()
        trickle.sendall(b"GET /info HTTP/1.0\r\n")
        closed = False
        while time.monotonic() - start < 10:
            try:
                trickle.sendall(b"X-a: b\r\n")
                time.sleep(0.5)
            except OSError:
                closed = True
                break
            trickle.setblocking(False)
            try:
                if trickle.recv(1024) == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            finally:
                trickle.setblocking(True)
        assert closed and time.monotonic() - start < 6
        for sock in silent + [trickle]:
            sock.close()
        assert wait_until(lambda: threading.active_count() <= threads_before, 5)
        still_serving(url)
    finally:
        stop(server)


def test_4_endless_model_is_stopped_by_the_check_timeout(tmp_path):
    bundle = loop_bundle(tmp_path / "loop")
    start = time.monotonic()
    report = runtimes.check(bundle, timeout=2)
    assert time.monotonic() - start < 30
    result = report.results[0]
    assert result.status == "failed" and "did not finish" in result.reason and "2 s" in result.reason
    proc = _cli("check", bundle, "--timeout", "2")
    assert proc.returncode == 1 and "did not finish" in proc.stdout


def test_4_killed_check_leaves_no_worker_spinning(tmp_path):
    bundle = loop_bundle(tmp_path / "loop")
    proc = subprocess.Popen([PY, "-m", "wherry.runtimes", "check", str(bundle), "--timeout", "0"], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: children(proc.pid), 30), "the isolated worker never started"
        worker = children(proc.pid)[0]
        time.sleep(1.0)  # the worker is now spinning in onnxruntime
        proc.kill()
        proc.wait()
        assert wait_until(lambda: not alive(worker), 10), "the worker outlived its killed parent"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_4_runner_stops_an_endless_check_after_its_job_timeout(tmp_path):
    server, url = serve_in_thread(limits=Limits(job_timeout=2.0))
    try:
        status, body = request(url + "/bundles", "POST", tar_bytes(loop_bundle(tmp_path / "loop")))
        start = time.monotonic()
        status, body = request(f"{url}/bundles/{json.loads(body)['id']}/check", "POST", timeout=60)
        assert status == 200 and time.monotonic() - start < 30
        reply = json.loads(body)
        assert not reply["ok"] and "did not finish" in reply["report"]["artifacts"][0]["reason"]
        still_serving(url)
    finally:
        stop(server)


# ------------------------------------------------------------------ 5. token

def test_5_token_is_compared_in_constant_time(monkeypatch):
    import hmac

    from wherry.runtimes import serve

    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)
    monkeypatch.setattr(serve.hmac, "compare_digest", spy)
    server, url = serve_in_thread(token="s3cret")
    try:
        assert request(url + "/info", token="wrong")[0] == 401
        assert request(url + "/info", token="s3cret")[0] == 200
        status, _ = raw_request(url, "GET /info HTTP/1.0\r\nAuthorization: Bearer s3cr\xe9t\r\n\r\n".encode("latin-1"))
        assert status == 401
        assert len(calls) == 3
    finally:
        stop(server)


def test_5_token_from_a_file_or_the_environment(tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    for args, env in ((["--token-file", str(token_file)], {}), ([], {"WHERRY_TOKEN": "from-a-file"})):
        runner = RunnerProcess("--host", "0.0.0.0", *args, env=env)
        try:
            url = runner.url.replace("0.0.0.0", "127.0.0.1")
            assert request(url + "/info")[0] == 401
            assert request(url + "/info", token="from-a-file")[0] == 200
        finally:
            runner.stop()
    help_text = _cli("serve", "--help").stdout
    assert "--token-file" in help_text and "ps" in help_text


# ------------------------------------------------------------------ 6. convert --name

@pytest.mark.parametrize("name", ["../escaped", "/ABS/escaped", "a/b", "..", "."])
def test_6_convert_name_must_be_a_plain_name(wherry, tmp_path, name):
    out = tmp_path / "out"
    name = name.replace("/ABS", str(tmp_path))
    victim = tmp_path / "escaped.desktop-x86_64"
    victim.mkdir()
    (victim / "keep").write_text("precious")
    proc = wherry("convert", MODEL, "-o", out, "--name", name, "--force", "--format", "onnx", "--no-verify")
    assert "not a plain name" in _one_error(proc, "wherry")
    assert (victim / "keep").read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["escaped.desktop-x86_64"] + (["out"] if out.exists() else [])


# ------------------------------------------------------------------ 7. work dir removed

@pytest.mark.parametrize("address", ["ssh://-oProxyCommand={pwn}@localhost", "ssh://root@-oProxyCommand={pwn}",
                                     "ssh://-F/dev/null@localhost:22"])
def test_6_ssh_address_that_is_an_option_is_refused(wherry, onnx_only, tmp_path, address):
    """An ssh device address (maybe listed by a labgrid coordinator) starting with '-' would reach ssh
    and scp as an option; -oProxyCommand runs a command on this machine. Refused before ssh starts."""
    marker = tmp_path / "pwned"
    pwn = tmp_path / "pwn"
    for name in (pwn, tmp_path / "pwn@localhost"):
        name.write_text(f"#!/bin/sh\ntouch {marker}\n")
        name.chmod(0o755)
    line = _one_error(wherry("check", onnx_only, "--device", address.format(pwn=pwn)), prog="wherry")
    assert "may not start with '-'" in line
    assert not marker.exists()


@pytest.mark.parametrize("address", ["ssh://root@localhost:-oProxyCommand=x", "ssh://root@localhost:99999"])
def test_6_ssh_address_with_a_port_that_is_no_port_is_one_error(wherry, onnx_only, address):
    """urllib's ValueError for such a port was a traceback."""
    assert "the port is not a number" in _one_error(wherry("check", onnx_only, "--device", address), prog="wherry")


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGINT])
def test_7_runner_removes_its_work_dir_and_uploads_on_exit(onnx_only, tmp_path, how):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    chosen = tmp_path / "chosen"
    for args in ([], ["--dir", str(chosen)]):
        runner = RunnerProcess(*args, env={"TMPDIR": str(tmp)})
        status, _ = request(runner.url + "/bundles", "POST", tar_bytes(onnx_only))
        assert status == 201
        assert any(tmp.iterdir()) or any(chosen.iterdir())
        assert runner.stop(how) == 0
        assert not any(tmp.iterdir()), list(tmp.iterdir())
        if args:
            assert chosen.is_dir() and not any(chosen.iterdir()), "uploads removed, the user's --dir kept"


# ------------------------------------------------------------------ 8. damaged manifests: no tracebacks

def _set(path, value):
    def mutate(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


def _tolerance(field, value):
    def mutate(data):
        tolerances = data["artifacts"][0]["tolerance"]
        if field is None:
            tolerances[next(iter(tolerances))] = value
        else:
            tolerances[next(iter(tolerances))][field] = value
    return mutate


def _nest(depth):
    return "[" * depth + "]" * depth


DAMAGE = {
    "golden is a list": _set(["golden"], [1, 2]),
    "golden file is a number": _set(["golden", "outputs"], 7),
    "artifact file is a dict": _set(["artifacts", 0, "file"], {"a": 1}),
    "size is text": _set(["artifacts", 0, "size"], "big"),
    "precision is a list": _set(["artifacts", 0, "precision"], ["fp32"]),
    "precision unknown": _set(["artifacts", 0, "precision"], "fp64"),
    "tolerance is a number": _set(["artifacts", 0, "tolerance"], 3),
    "tolerance entry is a list": _tolerance(None, [1e-3]),
    "tolerance field is text": _tolerance("rtol", "loose"),
    "tolerance is NaN": _tolerance("atol", float("nan")),
    "tolerance is infinite": _tolerance("min_cosine", float("-inf")),
    "runtime unknown": _set(["artifacts", 0, "runtime"], "tensorrt"),
    "format unknown": _set(["artifacts", 0, "format"], "tflite"),
    "lone surrogate in a name": _set(["outputs", 0, "name"], "\ud800"),
    "lone surrogate in a file": _set(["artifacts", 0, "file"], "model\udcff.onnx"),
    "shape is text": _set(["inputs", 0, "shape"], "1,3,16,16"),
    "dtype is nonsense": _set(["inputs", 0, "dtype"], "float33"),
    "dtype is object": _set(["inputs", 0, "dtype"], "O"),
    "artifacts is empty": _set(["artifacts"], []),
    "artifacts is a dict": _set(["artifacts"], {"file": "model.onnx"}),
    "inputs missing": lambda data: data.pop("inputs"),
    "name is a number": _set(["name"], 42),
    "schema is a list": _set(["schema"], ["wherry.bundle/2"]),
    "old schema": _set(["schema"], "wherry.bundle/1"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_8_damaged_manifest_is_one_message(onnx_only, kind):
    from wherry.runtimes.cli import main

    data = _manifest(onnx_only)
    DAMAGE[kind](data)
    _write_manifest(onnx_only, data)
    with pytest.raises(runtimes.BundleError):
        runtimes.check(onnx_only)
    assert main(["check", str(onnx_only)]) == 2


@pytest.mark.parametrize("text", [_nest(100_000).encode(),
                                  b'{"schema": "wherry.bundle/2", "x": ' + _nest(40).encode() + b"}",
                                  b"\xff\xfe{", b"[1]", b"1e999999", b"", b"{" * 3])
def test_8_unparseable_manifest_is_one_message_in_both_clis(onnx_only, wherry, text):
    (onnx_only / "manifest.json").write_bytes(text)
    _one_error(_cli("check", onnx_only))
    if text.startswith(b"[[["):
        _one_error(wherry("check", onnx_only), "wherry")


def test_8_damaged_golden_npz_is_one_message(onnx_only, wherry):
    path = onnx_only / "golden" / "outputs.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # one flipped bit
    path.write_bytes(bytes(data))
    assert "does not match its manifest hash" in _one_error(_cli("check", onnx_only))
    reseal(onnx_only)  # even when the manifest vouches for the damaged file
    message = _one_error(wherry("check", onnx_only), "wherry")
    assert "golden data" in message


# ------------------------------------------------------------------ 9. false passes

def _replace_golden(bundle, outputs):
    np.savez(bundle / "golden" / "outputs.npz", **outputs)
    reseal(bundle)


def test_9_empty_or_partial_golden_outputs_never_pass(onnx_only):
    golden = load_npz(onnx_only / "golden" / "outputs.npz")
    assert len(golden) == 2
    _replace_golden(onnx_only, dict(list(golden.items())[:1]))  # one output would go unchecked
    assert "nothing to compare" in _one_error(_cli("check", onnx_only))
    _replace_golden(onnx_only, {})
    assert "nothing to compare" in _one_error(_cli("check", onnx_only))


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_9_non_finite_goldens_never_pass(onnx_only, value):
    golden = load_npz(onnx_only / "golden" / "outputs.npz")
    _replace_golden(onnx_only, {k: np.full_like(v, value) for k, v in golden.items()})
    proc = _cli("check", onnx_only)
    assert proc.returncode == 1 and "no finite value" in proc.stdout


def test_9_partly_non_finite_golden_must_match_where_not_finite(onnx_only):
    golden = load_npz(onnx_only / "golden" / "outputs.npz")
    changed = {}
    for k, v in golden.items():
        v = v.copy()
        v.flat[0] = np.nan
        changed[k] = v
    _replace_golden(onnx_only, changed)
    assert _cli("check", onnx_only).returncode == 1


def test_9_empty_or_missing_hash_disables_nothing(onnx_only):
    data = _manifest(onnx_only)
    data["artifacts"][0]["sha256"] = ""
    _write_manifest(onnx_only, data)
    assert "64 hex digits" in _one_error(_cli("check", onnx_only))
    data["artifacts"][0]["sha256"] = content_hash(onnx_only / "model.onnx")
    del data["golden"]["outputs_sha256"]
    _write_manifest(onnx_only, data)
    assert "outputs_sha256 is missing" in _one_error(_cli("check", onnx_only))


def test_9_golden_files_are_hashed(onnx_only):
    golden = load_npz(onnx_only / "golden" / "outputs.npz")
    np.savez(onnx_only / "golden" / "outputs.npz", **{k: v + 1 for k, v in golden.items()})
    assert "golden/outputs.npz does not match its manifest hash" in _one_error(_cli("check", onnx_only))


# ------------------------------------------------------------------ 10. many-member npz

def test_10_many_member_npz_loads_in_linear_time(tmp_path):
    def seconds(n):
        path = tmp_path / f"{n}.npz"
        np.savez(path, **{f"a{i}": np.zeros(1, np.float32) for i in range(n)})
        start = time.perf_counter()
        assert len(load_npz(path)) == n
        return time.perf_counter() - start
    small, large = min(seconds(500) for _ in range(2)), min(seconds(4000) for _ in range(2))
    assert large < 10 * small + 0.5, (small, large)  # 8x the members; quadratic would be ~64x
    path = tmp_path / "flood.npz"
    np.savez(path, **{f"a{i}": np.zeros(0) for i in range(5000)})
    start = time.perf_counter()
    with pytest.raises(runtimes.InputError, match="at most 4096 arrays"):
        load_npz(path)
    assert time.perf_counter() - start < 5


# ------------------------------------------------------------------ 11. convert: shapes, inputs, SIGTERM

@pytest.mark.parametrize("damage", ["artifact-loop", "golden-loop", "long-name"])
def test_11_symlink_loops_and_overlong_names_in_a_bundle_are_one_message(onnx_only, damage):
    """A symlink loop (RuntimeError from Path.resolve) and a file name longer than the file system allows
    (OSError ENAMETOOLONG) were tracebacks."""
    if damage == "long-name":
        data = _manifest(onnx_only)
        data["artifacts"][0]["file"] = "m" * 300 + ".onnx"
        _write_manifest(onnx_only, data)
    else:
        target = onnx_only / ("model.onnx" if damage == "artifact-loop" else "golden/outputs.npz")
        target.unlink()
        os.symlink(target.name + ".loop", target)
        os.symlink(target.name, target.parent / (target.name + ".loop"))
    proc = _cli("check", onnx_only)
    assert "Traceback" not in proc.stderr, proc.stderr
    if damage == "golden-loop":
        assert "not a file inside the bundle" in _one_error(proc)
    else:
        assert proc.returncode == 1
        assert "not a file inside the bundle" in proc.stdout or "missing" in proc.stdout


def test_11_a_deeply_nested_upload_is_400_not_a_500():
    """A member nested 2 000 folders deep made os.makedirs recurse to a RecursionError: a 500."""
    server, url = serve_in_thread()
    try:
        info = tarfile.TarInfo("/".join(["a"] * 2000) + "/f")
        info.size = 1
        status, body = request(url + "/bundles", "POST", tar_bytes(extra=[(info, b"x")]))
        assert status == 400 and "nested 2001 folders deep" in json.loads(body)["error"]
        still_serving(url)
    finally:
        stop(server)


def test_11_a_bundle_folder_nested_1200_deep_is_the_runners_one_error_on_the_host(onnx_only):
    """`check --device http://` packed the bundle with tarfile's recursion (a frame per folder): a folder
    nested 1200 deep was a RecursionError traceback on the host, before anything reached the runner."""
    from wherry.targets.devices import DeviceError
    from wherry.targets.devices.http import HttpDevice

    nest_folders(onnx_only, 1200)
    runner = RunnerProcess()
    try:
        with pytest.raises(DeviceError) as raised:
            HttpDevice(runner.url).run(["check", str(onnx_only)], None)
        assert "nested 33 folders deep (at most 32)" in raised.value.message
    finally:
        assert runner.stop() == 0
        for depth in range(1200, 0, -1):   # bottom up: pytest's own (recursive) removal never meets the chain
            os.rmdir(onnx_only.joinpath(*["d"] * depth))


@pytest.mark.parametrize("raw, status", [
    (b"GARBAGE\r\n\r\n", 400),
    (b"PUT /info HTTP/1.0\r\n\r\n", 501),
    (b"GET /" + b"a" * 70000 + b" HTTP/1.0\r\n\r\n", 414),
    (b"GET /info HTTP/1.0\r\n" + b"X: y\r\n" * 200 + b"\r\n", 431),
])
def test_11_malformed_http_gets_a_json_error(raw, status):
    """The stdlib's own refusals were HTML pages (or, for a garbled request line, a bare body)."""
    server, url = serve_in_thread()
    try:
        got, body = raw_request(url, raw)
        assert got == status
        assert json.loads(body)["error"].startswith(str(status))
        still_serving(url)
    finally:
        stop(server)


@pytest.mark.parametrize("shape", ["x=1000000000,1,8,8", "x=2000000,1,8,8"])
def test_11_huge_shape_is_refused_before_allocating(wherry, tmp_path, shape):
    start = time.monotonic()
    proc = wherry("convert", MODEL, "-o", tmp_path, "--shape", shape, "--format", "onnx", timeout=120)
    message = _one_error(proc, "wherry")
    assert "random golden inputs" in message and "at most 256 MiB" in message
    assert time.monotonic() - start < 60
    assert not [p for p in tmp_path.iterdir()]


@pytest.mark.parametrize("bad", ["empty", "nan", "inf"])
def test_11_useless_inputs_are_refused(wherry, tmp_path, bad):
    x = np.load(INPUTS)["x"]
    x = x[:0] if bad == "empty" else np.where(np.arange(x.size).reshape(x.shape) == 3, np.float32(bad), x)
    np.savez(tmp_path / "in.npz", x=x.astype(np.float32))
    proc = wherry("convert", MODEL, "-o", tmp_path / "out", "--inputs", tmp_path / "in.npz", "--format", "onnx")
    assert ("empty" if bad == "empty" else "NaN or Inf") in _one_error(proc, "wherry")


def test_11_sigterm_during_convert_cleans_up(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.Popen([PY, "-m", "wherry.convert.cli", "convert", str(MODEL), "-o", str(out), "-t", "rpi4"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: out.is_dir() and any(p.name.startswith(".wherry-work-") for p in out.iterdir()),
                          120, 0.05), "convert never started its work"
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert list(out.iterdir()) == [], list(out.iterdir())
