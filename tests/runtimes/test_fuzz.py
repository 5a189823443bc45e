"""Property-based fuzzing (hypothesis) of everything a stranger can hand wherry: manifests, golden and
artifact files, .npz files, tar uploads and raw HTTP requests.

Properties: no traceback (an unexpected exception fails the example); `check` exits 0, 1 or 2 and an exit
2 prints one error line (plus hints); damaged data never passes; nothing outside the bundle or the work
directory is touched; each case stays within a stated time and memory bound.

The normal test run uses the "fast" profile (a fixed, small set of cases: seconds). The long run,
``WHERRY_FUZZ=long`` (scripts/fuzz.sh), draws 500 random cases per property: 3000 in all.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from support.hostile_fixtures import raw_request, reseal, serve_in_thread, still_serving, stop, tar_bytes
from support.runtime_fixtures import make_bundle, rt_feeds, rt_models, rt_reference  # noqa: F401
from wherry.runtimes.errors import InputError
from wherry.runtimes.npz import read_npz
from wherry.runtimes.serve import HttpError, Limits, safe_extract

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
          HealthCheck.function_scoped_fixture]
settings.register_profile("fast", max_examples=30, deadline=None, derandomize=True, database=None,
                          suppress_health_check=_QUIET, phases=[Phase.explicit, Phase.generate])
settings.register_profile("long", max_examples=500, deadline=None, database=None, suppress_health_check=_QUIET)
FUZZ = settings(settings.get_profile(os.environ.get("WHERRY_FUZZ", "fast")))

CASE_SECONDS = 20          # one case, whatever it is (a check runs a real model in onnxruntime)
NPZ_LIMIT = 4 << 20        # the .npz bound given to the parser under fuzz
NPZ_PEAK = 3 * NPZ_LIMIT   # its memory bound: the limit, plus a file-sized copy and small change


# ----------------------------------------------------------------------------- a bundle to damage

@pytest.fixture(scope="module")
def pristine(rt_models, rt_reference, tmp_path_factory):  # noqa: F811
    """The tiny CNN as a bundle with its ONNX artifact (checked here) and its ARM .nb (hashed, not run)."""
    return make_bundle(tmp_path_factory.mktemp("fuzz") / "tinycnn.fuzz", rt_models,
                       files=("model.onnx", "model.arm.nb"), golden=rt_reference)


@contextlib.contextmanager
def scratch(pristine):
    """A fresh copy of the bundle next to a decoy: copies of its files outside it (same hashes)."""
    root = Path(tempfile.mkdtemp(prefix="wherry-fuzz-"))
    try:
        bundle = root / "bundle"
        shutil.copytree(pristine, bundle)
        decoy = root / "outside"
        shutil.copytree(pristine, decoy)
        before = _snapshot(root, bundle)
        yield root, bundle, decoy
        assert _snapshot(root, bundle) == before, "a file outside the bundle was touched"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _snapshot(root: Path, bundle: Path):
    return sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in root.rglob("*")
                  if bundle not in p.parents and p != bundle)


def check_cli(bundle: Path):
    """`python -m wherry.runtimes check` in this process (artifacts in-process: the fuzzed files never reach a
    native loader unless their hash is the genuine one); returns (exit code, stdout, stderr)."""
    from wherry.runtimes.cli import main

    out, err = io.StringIO(), io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check", str(bundle), "--no-isolate"])
    assert time.monotonic() - start < CASE_SECONDS
    out, err = out.getvalue(), err.getvalue()
    assert code in (0, 1, 2), code
    assert "Traceback" not in err
    if code == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert lines[0].startswith("runtimes: error: ") and all(ln.startswith("  hint: ") for ln in lines[1:]), err
    return code, out, err


# ----------------------------------------------------------------------------- manifests

_TEXT = st.sampled_from([
    "", ".", "..", "../model.onnx", "../outside/model.onnx", "/etc/passwd", "model.onnx", "./model.onnx",
    "golden/../model.onnx", "model.onnx/", "\\model.onnx", "golden/inputs.npz", "golden/outputs.npz",
    "model.arm.nb", "\ud800", "a\x00b", "fp16", "int8", "onnx", "nb", "paddle", "arm", "x86", "any", "onnxruntime",
    "paddlelite", "float32", "int64", "O", "V0", "S3", "wherry.bundle/1", "wherry.bundle/2", "x" * 300, "0" * 64,
]) | st.text(max_size=12)
_SCALARS = (st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=True)
            | st.sampled_from([0, -1, 1, 2 ** 63, 1e308, -0.0]) | _TEXT)
_VALUES = st.recursive(_SCALARS, lambda kids: st.lists(kids, max_size=3) | st.dictionaries(_TEXT, kids, max_size=3),
                       max_leaves=6)


def _nodes(node, path=()):
    yield path
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _nodes(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _nodes(value, path + (i,))


def _mutate(data, path, op, value):
    if not path:
        return value if op == "replace" else data
    parent = data
    for key in path[:-1]:
        parent = parent[key]
    key = path[-1]
    if op == "replace":
        parent[key] = value
    elif op == "delete":
        del parent[key]
    elif op == "nest":
        parent[key] = json.loads("[" * 40 + json.dumps(parent[key]) + "]" * 40)
    elif op == "absolute" and isinstance(parent[key], str):
        parent[key] = value if isinstance(value, str) and value.startswith("/") else "/" + parent[key]
    return data


_MUTATIONS = st.lists(st.tuples(st.integers(0, 10 ** 6), st.sampled_from(["replace", "delete", "nest", "absolute"]),
                                _VALUES), min_size=1, max_size=3)


@FUZZ
@given(mutations=_MUTATIONS, drop_artifact=st.booleans(), text_damage=st.none() | st.tuples(
    st.integers(0, 10 ** 6), st.sampled_from([b"", b"[[[[", b"\xff", b"\\ud800", b'"', b"}", b"9" * 5000])))
def test_fuzz_manifest(pristine, mutations, drop_artifact, text_damage):
    with scratch(pristine) as (root, bundle, decoy):
        data = json.loads((bundle / "manifest.json").read_text())
        for index, op, value in mutations:
            paths = list(_nodes(data))
            path = paths[index % len(paths)]
            if op == "absolute" and isinstance(value, str) and value.startswith("/"):
                value = str(decoy / "model.onnx")
            data = _mutate(data, path, op, value)
        text = json.dumps(data).encode("utf-8", "surrogatepass")
        if text_damage is not None:
            at, insert = text_damage
            at %= len(text) + 1
            text = text[:at] + insert + text[at + len(insert) % 3:]
        (bundle / "manifest.json").write_bytes(text)
        if drop_artifact:
            (bundle / "model.onnx").unlink()
        code, out, err = check_cli(bundle)
        if drop_artifact:
            assert code != 0, "passed although the bundle lost its only runnable artifact: something outside ran"


# ----------------------------------------------------------------------------- golden and artifact data

_FILES = ["golden/inputs.npz", "golden/outputs.npz", "model.onnx", "model.arm.nb"]


@FUZZ
@given(file=st.sampled_from(_FILES), kind=st.sampled_from(["flip", "truncate", "append", "zero"]),
       at=st.integers(0, 10 ** 9), amount=st.integers(1, 4096), reseal_it=st.booleans())
def test_fuzz_damaged_bytes(pristine, file, kind, at, amount, reseal_it):
    with scratch(pristine) as (root, bundle, decoy):
        path = bundle / file
        data = bytearray(path.read_bytes())
        at %= len(data)
        if kind == "flip":
            data[at] ^= 1 << (amount % 8)
        elif kind == "truncate":
            del data[at:]
        elif kind == "append":
            data += bytes([amount % 256]) * amount
        else:
            data[at:at + amount] = bytes(len(data[at:at + amount]))
        assume(bytes(data) != path.read_bytes())
        path.write_bytes(bytes(data))
        resealed = reseal_it and file.startswith("golden/")  # a resealed artifact would reach native code
        if resealed:
            reseal(bundle)
        code, out, err = check_cli(bundle)
        if not resealed:
            assert code != 0, f"damaged {file} passed"
        elif code == 0:  # the manifest vouches for the new bytes: a pass must mean the same arrays
            original = read_npz(open(pristine / file, "rb"))
            changed = read_npz(io.BytesIO(bytes(data)))
            assert original.keys() == changed.keys()
            for name in original:
                assert changed[name].shape == original[name].shape


_SEMANTIC = ["nan", "inf", "offset", "scale", "shape", "drop", "empty", "all-nan", "zero-size", "int"]


@FUZZ
@given(kind=st.sampled_from(_SEMANTIC), which=st.integers(0, 100), at=st.integers(0, 10 ** 6))
def test_fuzz_damaged_golden_never_passes(pristine, kind, which, at):
    """Golden outputs changed beyond any tolerance, with a manifest rewritten to vouch for them: never a pass."""
    with scratch(pristine) as (root, bundle, decoy):
        golden = read_npz(open(bundle / "golden" / "outputs.npz", "rb"))
        name = sorted(golden)[which % len(golden)]
        value = golden[name].copy()
        flat = value.reshape(-1)
        i = at % flat.size
        if kind == "nan":
            flat[i] = np.nan
        elif kind == "inf":
            flat[i] = np.inf
        elif kind == "offset":
            flat[i] += 1.0 + 2 * np.abs(value).max()
        elif kind == "scale":
            value = value * 3.0 + 1.0
        elif kind == "shape":
            value = value[:-1] if value.shape[0] > 1 else np.concatenate([value, value])
        elif kind == "drop":
            del golden[name]
        elif kind == "empty":
            golden = {}
        elif kind == "all-nan":
            value = np.full_like(value, np.nan)
        elif kind == "zero-size":
            value = value[:0]
        elif kind == "int":
            value = (value * 1000).astype(np.int32)
        if kind not in ("drop", "empty"):
            golden[name] = value
        np.savez(bundle / "golden" / "outputs.npz", **golden)
        reseal(bundle)
        code, out, err = check_cli(bundle)
        assert code in (1, 2), f"golden damaged by {kind!r} passed:\n{out}"


# ----------------------------------------------------------------------------- .npz parser

def _valid_npz(arrays, compress):
    buffer = io.BytesIO()
    (np.savez_compressed if compress else np.savez)(buffer, **arrays)
    return buffer.getvalue()


_ARRAYS = st.dictionaries(
    st.text("abcxyz_0123456789", min_size=1, max_size=6),
    st.tuples(st.sampled_from(["<f4", ">f8", "<i8", "|u1", "|b1", "<f2"]),
              st.lists(st.integers(0, 5), max_size=3), st.booleans()),
    max_size=4)


def _forged_header(shape, descr):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        with archive.open("x.npy", "w") as fh:
            header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
            fh.write(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + bytes(64))
    return buffer.getvalue()


@FUZZ
@given(spec=_ARRAYS, compress=st.booleans(),
       damage=st.lists(st.tuples(st.sampled_from(["flip", "truncate", "insert"]), st.integers(0, 10 ** 6),
                                 st.binary(min_size=1, max_size=8)), max_size=3),
       forged=st.none() | st.tuples(
           st.lists(st.integers(-2, 10 ** 13), max_size=4).map(tuple) | st.sampled_from(["(1,", "[1]", "None"]),
           st.sampled_from(["<f4", "|O", "<V0", "|S3", "<U2", "[('a', '<f4')]", "<f4x", "", "<M8[s]"])))
def test_fuzz_npz(spec, compress, damage, forged):
    arrays = {}
    for name, (dtype, shape, fortran) in spec.items():
        value = (np.arange(int(np.prod(shape, dtype=np.int64))) % 7).astype(dtype).reshape(shape)
        arrays[name] = np.asfortranarray(value) if fortran else value
    data = _forged_header(*forged) if forged else _valid_npz(arrays, compress)
    for kind, at, blob in damage:
        at %= len(data) + 1
        if kind == "flip":
            data = data[:at] + bytes([(data[at] if at < len(data) else 0) ^ blob[0]]) + data[at + 1:]
        elif kind == "truncate":
            data = data[:at]
        else:
            data = data[:at] + blob + data[at:]
    tracemalloc.start()
    start = time.monotonic()
    try:
        loaded = read_npz(io.BytesIO(data), "fuzz.npz", NPZ_LIMIT)
    except InputError as exc:
        loaded, message = None, exc.message
        assert "fuzz.npz" in message
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.monotonic() - start < 5
    assert peak < NPZ_PEAK + 2 * len(data), peak
    if loaded is not None:
        assert all(isinstance(v, np.ndarray) and v.dtype.kind in "biuf" for v in loaded.values())
        assert sum(v.nbytes for v in loaded.values()) <= NPZ_LIMIT
        if not damage and not forged:  # an intact file reads exactly as numpy itself reads it
            with np.load(io.BytesIO(data), allow_pickle=False) as expected:
                assert sorted(loaded) == sorted(expected.files)
                for name in expected.files:
                    np.testing.assert_array_equal(loaded[name], expected[name])
                    assert loaded[name].dtype == expected[name].dtype


# ----------------------------------------------------------------------------- tar uploads

_NAMES = st.sampled_from([
    "b/manifest.json", "b/model.onnx", "b/golden/inputs.npz", "manifest.json", "b", "b/golden", "../evil",
    "b/../../evil", "/abs/evil", "", ".", "./b/x", "b//x", "b/" + "n" * 200, "b/\u00e9\u4e2d", "b/a\\..\\..\\x",
    "b/manifest.json/inner", "..", "b/..",
]) | st.text(min_size=1, max_size=20)
_TYPES = st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE,
                          tarfile.CHRTYPE, tarfile.REGTYPE, tarfile.REGTYPE])
_MEMBERS = st.lists(st.tuples(_NAMES, _TYPES, st.integers(0, 300_000), st.sampled_from(["", "/etc/passwd", "../x"])),
                    max_size=25)
TAR_LIMITS = Limits(max_bundle=256 << 10, max_members=20)


@FUZZ
@given(members=_MEMBERS, mode=st.sampled_from(["w", "w:gz", "w:bz2", "w:xz"]),
       fmt=st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]),
       damage=st.none() | st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)))
def test_fuzz_tar_upload(members, mode, fmt, damage):
    root = Path(tempfile.mkdtemp(prefix="wherry-fuzz-tar-"))
    try:
        (root / "sentinel").write_text("x")
        dest = root / "work" / "upload"
        dest.mkdir(parents=True)
        buffer = io.BytesIO()
        try:
            with tarfile.open(fileobj=buffer, mode=mode, format=fmt) as archive:
                for name, kind, size, link in members:
                    info = tarfile.TarInfo(name)
                    info.type, info.linkname = kind, link
                    info.size = size if kind == tarfile.REGTYPE else 0
                    archive.addfile(info, io.BytesIO(bytes(info.size)) if info.size else None)
        except (ValueError, UnicodeError):
            assume(False)  # tarfile cannot even write this name in this format
        data = bytearray(buffer.getvalue())
        if damage is not None:
            data[damage[0] % len(data)] ^= damage[1] or 1
        (root / "upload.tar").write_bytes(bytes(data))
        start = time.monotonic()
        try:
            bundle_root = safe_extract(str(root / "upload.tar"), str(dest), TAR_LIMITS)
            assert Path(bundle_root).resolve().is_relative_to(dest.resolve())
        except HttpError as exc:
            assert exc.status in (400, 413), exc.status
        assert time.monotonic() - start < 10
        everything = list(root.rglob("*"))
        outside = [p for p in everything if dest not in p.parents and p != dest]
        assert sorted(p.name for p in outside) == ["sentinel", "upload.tar", "work"]
        inside = [p for p in everything if dest in p.parents]
        assert not [p for p in inside if p.is_symlink() or not (p.is_file() or p.is_dir())]
        assert sum(p.stat().st_size for p in inside if p.is_file()) <= TAR_LIMITS.max_bundle
        assert len(inside) <= 2 * TAR_LIMITS.max_members  # members plus the directories they imply
    finally:
        shutil.rmtree(root, ignore_errors=True)


# ----------------------------------------------------------------------------- HTTP requests

TOKEN = "fuzz-token"


@pytest.fixture(scope="module")
def runner(pristine, tmp_path_factory):
    limits = Limits(max_upload=256 << 10, max_bundle=1 << 20, max_members=50, max_arrays=1 << 20,
                    client_timeout=2.0, request_timeout=5.0, job_timeout=15.0, max_connections=8)
    server, url = serve_in_thread(token=TOKEN, workdir=str(tmp_path_factory.mktemp("runner-work")), limits=limits)
    status, body = raw_request(url, _http("POST", "/bundles", {"Authorization": f"Bearer {TOKEN}"},
                                          tar_bytes(pristine)), timeout=60)
    assert status == 201
    yield server, url, json.loads(body)["id"]
    stop(server)


def _http(method, path, headers, body, length="right"):
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    for key, value in headers.items():
        lines.append(f"{key}: {value}")
    if length == "right":
        lines.append(f"Content-Length: {len(body)}")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


_PATHS = st.sampled_from(["/info", "/bundles", "/bundles/ID/check", "/bundles/ID/run",
                          "/bundles/ID/run?artifact=model.onnx",
                          "/run?bundle=ID", "/run?bundle=ID&artifact=../../x", "/bundles/ID", "/bundles/nope/check",
                          "/../../etc/passwd", "/%2e%2e/%2e%2e/", "/bundles/..%2F..%2Fx/check", "/" + "a" * 3000,
                          "/run?bundle=ID&artifact=model.arm.nb", "//", "/info?" + "&" * 500])
_BODIES = st.sampled_from(["npz", "bad-npz", "tar", "empty"]) | st.binary(max_size=2048)


@FUZZ
@given(method=st.sampled_from(["GET", "POST", "DELETE", "PUT", "HEAD", "G\x00T", "POST " * 3]),
       path=_PATHS, auth=st.sampled_from(["right", "wrong", "none", "odd"]),
       length=st.sampled_from(["right", None, "-1", "abc", "99999999999999999999", "+5", "1e3", "5, 5", "long"]),
       chunked=st.booleans(), body=_BODIES)
def test_fuzz_http(runner, pristine, method, path, auth, length, chunked, body):
    server, url, bundle_id = runner
    threads = threading.active_count()
    if body == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, x=np.zeros((1, 3, 16, 16), np.float32))
        body = buffer.getvalue()
    elif body == "bad-npz":
        body = b"PK\x03\x04" + bytes(100)
    elif body == "tar":
        body = tar_bytes(pristine)
    elif body == "empty":
        body = b""
    if method == "DELETE" and path.startswith("/bundles/ID") and auth == "right":
        method = "GET"  # keep the shared upload for the other cases
    headers = {"Authorization": {"right": f"Bearer {TOKEN}", "wrong": "Bearer nope", "odd": "Bearer \udcff\u00e9"}
               .get(auth)} if auth != "none" else {}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    if length == "long":
        length = str(len(body) + 10)
    request = _http(method, path.replace("ID", bundle_id), headers, body, length)
    start = time.monotonic()
    status, reply = raw_request(url, request, timeout=CASE_SECONDS)
    assert time.monotonic() - start < CASE_SECONDS
    assert status is not None and status != 500 and 200 <= status < 600, (status, reply[:500])
    if status >= 400 and reply:
        assert reply.startswith(b"<") or "error" in json.loads(reply), reply[:300]
    still_serving(url, token=TOKEN)
    assert threading.active_count() <= threads + 2
