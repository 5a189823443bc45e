"""Helpers for the hostile-input tests (test_hostile.py, test_fuzz.py): hand-made bundles, raw HTTP,
archives, and measuring a child process's peak memory. Models are real ONNX graphs run by the real
onnxruntime; the HTTP servers are real runners on 127.0.0.1 started by the tests themselves."""
from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
from support.processes import sigint_as_in_a_terminal

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable


def endless_loop_model() -> bytes:
    """An ONNX Loop of 2**62 steps: onnxruntime spins on it for ever (a hostile artifact)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1])], [one])
    graph = helper.make_graph(
        [helper.make_node("Loop", ["trip", "cond", "x"], ["y"], body=body)], "endless",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.array(2 ** 62, dtype=np.int64), "trip"),
         numpy_helper.from_array(np.array(True), "cond")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def onnx_bundle(dest: Path, model: bytes, feeds: Dict[str, np.ndarray], golden: Dict[str, np.ndarray]) -> Path:
    """A bundle holding one ONNX artifact, written with wherry.runtimes.bundle (the one definition of the format)."""
    from wherry.runtimes.bundle import GOLDEN_INPUTS, GOLDEN_OUTPUTS, Artifact, Manifest, content_hash
    from wherry.runtimes.specs import TensorSpec

    dest.mkdir(parents=True)
    (dest / "golden").mkdir()
    (dest / "model.onnx").write_bytes(model)
    np.savez(dest / GOLDEN_INPUTS, **feeds)
    np.savez(dest / GOLDEN_OUTPUTS, **golden)
    art = Artifact(file="model.onnx", format="onnx", precision="fp32", arch="any", size=len(model),
                   sha256=content_hash(dest / "model.onnx"))
    Manifest(name=dest.name, inputs=[TensorSpec(k, str(v.dtype), v.shape) for k, v in feeds.items()],
             outputs=[TensorSpec(k, str(v.dtype), v.shape) for k, v in golden.items()], artifacts=[art],
             golden={"inputs": GOLDEN_INPUTS, "outputs": GOLDEN_OUTPUTS, "origin": "random", "seed": 0}).write(dest)
    return dest


def loop_bundle(dest: Path) -> Path:
    x = np.zeros(1, np.float32)
    return onnx_bundle(dest, endless_loop_model(), {"x": x}, {"y": x + 1})


def reseal(bundle: Path) -> None:
    """Record the current hashes of the golden files, as an attacker able to rewrite the manifest would."""
    from wherry.runtimes.bundle import content_hash

    manifest = json.loads((bundle / "manifest.json").read_text())
    for key in ("inputs", "outputs"):
        manifest["golden"][f"{key}_sha256"] = content_hash(bundle / manifest["golden"][key])
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))


def npz_bomb(data_bytes: int, name: str = "x") -> bytes:
    """A real compression bomb: a valid .npz (deflated) whose float32 array truly holds ``data_bytes`` of
    zeros (< 4 GiB) in a few MB. Built from one repeated deflate block, so it costs seconds, not minutes."""
    import struct
    import zlib

    block = bytes(1 << 24)
    assert data_bytes % len(block) == 0 and data_bytes < 1 << 32
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (data_bytes // 4,)})
    header = header.getvalue()
    squeeze = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = squeeze.compress(header) + squeeze.flush(zlib.Z_FULL_FLUSH)
    repeat = squeeze.compress(block) + squeeze.flush(zlib.Z_FULL_FLUSH)
    assert squeeze.compress(block) + squeeze.flush(zlib.Z_FULL_FLUSH) == repeat  # a full flush resets the state
    data = first + repeat * (data_bytes // len(block)) + squeeze.flush()
    crc = zlib.crc32(header)
    for _ in range(data_bytes // len(block)):
        crc = zlib.crc32(block, crc)
    member = f"{name}.npy".encode()
    size = len(header) + data_bytes
    fields = struct.pack("<HHHHHIII", 20, 0, 8, 0, 0x21, crc, len(data), size)
    local = b"PK\x03\x04" + fields + struct.pack("<HH", len(member), 0) + member
    central = (b"PK\x01\x02" + struct.pack("<H", 20) + fields
               + struct.pack("<HHHHHII", len(member), 0, 0, 0, 0, 0, 0) + member)
    end = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    return local + data + central + end


def tar_bytes(bundle: Optional[Path] = None, extra=(), mode: str = "w:gz") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as archive:
        if bundle is not None:
            archive.add(bundle, arcname=bundle.name)
        for info, data in extra:
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


# ----------------------------------------------------------------------------- HTTP

def serve_in_thread(**kwargs):
    """A real runner on 127.0.0.1 (an ephemeral port) in a thread; returns (server, url)."""
    from wherry.runtimes.serve import make_server

    server = make_server("127.0.0.1", 0, **kwargs)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def stop(server) -> None:
    server.shutdown()
    server.server_close()


def raw_request(url: str, data: bytes, timeout: float = 30, half_close: bool = True) -> Tuple[Optional[int], bytes]:
    """Send raw bytes to a runner; returns (status or None when it closed without a reply, reply body)."""
    host, port = url.rsplit("/", 1)[-1].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the runner may close early (e.g. 413 before the body): read its answer anyway
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except ConnectionResetError:
            pass
    reply = b"".join(chunks)
    if not reply.startswith(b"HTTP/"):
        return None, reply
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def request(url: str, method: str = "GET", body: bytes = None, token: str = None, timeout: float = 120):
    import urllib.error
    import urllib.request

    req = urllib.request.Request(url, data=body, method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def still_serving(url: str, token: str = None) -> None:
    status, body = request(url + "/info", token=token, timeout=30)
    assert status == 200 and "backends" in json.loads(body)


class RunnerProcess:
    """`python -m wherry.runtimes serve` as a real child process on 127.0.0.1 (ephemeral port)."""

    def __init__(self, *args: str, env: Optional[dict] = None):
        self.proc = subprocess.Popen([PY, "-m", "wherry.runtimes", "serve", "--port", "0", *args], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})}, preexec_fn=sigint_as_in_a_terminal)
        line = self.proc.stdout.readline()
        assert "wherry runner on http://" in line, line + self.proc.stderr.read()
        self.url = line.split()[3]

    def peak_rss_mb(self) -> float:
        with open(f"/proc/{self.proc.pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
        raise AssertionError("no VmHWM")

    def stop(self, sig=None) -> int:
        import signal

        self.proc.send_signal(sig or signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


# ----------------------------------------------------------------------------- processes

def run_measured(args, timeout: float = 300, **kwargs) -> Tuple[subprocess.CompletedProcess, float]:
    """Run a command; returns its result and its peak resident memory in MB (measured by a wrapper process)."""
    wrapper = ("import resource, subprocess, sys, json\n"
               "proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0\n"
               "print(json.dumps([proc.returncode, proc.stdout, proc.stderr, peak]))\n")
    proc = subprocess.run([PY, "-c", wrapper, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, **kwargs)
    code, out, err, peak = json.loads(proc.stdout)
    return subprocess.CompletedProcess(args, code, out, err), peak


def children(pid: int):
    """Direct child process ids of ``pid`` (Linux /proc)."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found += [int(p) for p in fh.read().split()]
        except OSError:
            pass
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def wait_until(condition, timeout: float, step: float = 0.1) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(step)
    return condition()


def nest_folders(root: Path, depth: int) -> None:
    """Make a chain of ``depth`` folders under ``root``, each made relative to its parent's descriptor so no
    path grows past PATH_MAX (what a recursive copy or pack has to survive)."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
            os.close(parent)
    finally:
        os.close(fd)
