"""What a conversion no longer pays for: paddle imported in the converting process, Paddle's op registry
asked again, each artifact hashed once per step, one check child per target.

The time these save is measured by benchmarks/bench_zoo.py; these tests pin the behaviour that saves it
(and that the shortcuts give the same answers as the long way)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.paths import REPO
from wherry.convert import example

PY = sys.executable


def _python(code: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, **(env or {})))


def test_a_legacy_conversion_never_imports_paddle_in_the_converting_process(tmp_path):
    """Golden run and exports run in children that import paddle anyway; the converting process reads and
    legalizes the program with paddle's protobuf schema alone (1.5-2.5 s less per conversion)."""
    code = f"""
import json, sys
from pathlib import Path
from wherry.convert import pipeline
pipeline.convert(pipeline.ConvertOptions(model={str(example.MODEL)!r}, targets=["desktop-x86_64"],
                                         out=Path({str(tmp_path / 'out')!r}), inputs={str(example.INPUTS)!r}))
print(json.dumps(sorted(m for m in sys.modules if m == "paddle" or m.startswith("paddle."))))
"""
    proc = _python(code)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == []
    assert list((tmp_path / "out").glob("*.desktop-x86_64/manifest.json"))


def test_paddles_op_registry_is_cached_per_version_and_matches_paddle(tmp_path):
    """A cold cache reads the registry from paddle and writes it; a warm one gives the same answers
    without paddle; both agree with what paddle itself says for the ops legalization asks about."""
    code = """
import json, sys
from wherry.convert import legalize, paddle_registry
answers = {op: [legalize.paddle_defaults(op), list(legalize.paddle_slots(op, "outputs"))]
           for op in ("relu6", "swish", "instance_norm", "flatten_contiguous_range", "no_such_op")}
print(json.dumps({"file": str(paddle_registry.cache_file()), "answers": answers,
                  "paddle_imported": "paddle" in sys.modules}))
"""
    env = {"WHERRY_CACHE": str(tmp_path / "cache")}
    cold = _python(code, env)
    assert cold.returncode == 0, cold.stderr[-3000:]
    cold = json.loads(cold.stdout.splitlines()[-1])
    assert cold["paddle_imported"] and os.path.isfile(cold["file"])
    warm = _python(code, env)
    assert warm.returncode == 0, warm.stderr[-3000:]
    warm = json.loads(warm.stdout.splitlines()[-1])
    assert not warm["paddle_imported"], "a warm registry must not import paddle"
    assert warm["answers"] == cold["answers"]
    assert cold["answers"]["relu6"][0]["threshold"] == 6.0
    assert "SavedMean" in cold["answers"]["instance_norm"][1]
    assert cold["answers"]["no_such_op"] == [{}, []]
    # the long way, in this process: paddle's own op protos
    from paddle.base import framework
    for op in ("relu6", "instance_norm", "flatten_contiguous_range"):
        proto = framework.OpProtoHolder.instance().get_op_proto(op)
        assert cold["answers"][op][1] == [s.name for s in proto.outputs]


def test_a_torn_registry_file_is_read_again_from_paddle(tmp_path):
    env = {"WHERRY_CACHE": str(tmp_path / "cache")}
    where = _python("from wherry.convert import paddle_registry; print(paddle_registry.cache_file())", env)
    file = where.stdout.strip()
    os.makedirs(os.path.dirname(file))
    with open(file, "w") as fh:
        fh.write('{"relu6": {"inp')
    proc = _python("from wherry.convert import legalize; print(legalize.paddle_defaults('relu6')['threshold'])", env)
    assert proc.returncode == 0 and proc.stdout.strip() == "6.0", proc.stderr[-2000:]
    assert json.load(open(file))["relu6"]["outputs"] == ["Out"]


def test_importing_paddle_late_keeps_wherrys_sigterm_handler():
    """paddle's import installs a C-level SIGTERM handler that dies without cleanup; a step that imports
    paddle after wherry set its own (PIR programs, a cold op registry) must leave wherry's in place."""
    code = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))   # stands for wherry's clean stop
IMPORT
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(5)
sys.exit(0)
"""
    guarded = _python(code.replace("IMPORT", "from wherry.convert.paddle_mode import import_paddle; import_paddle()"))
    assert guarded.returncode == 7, guarded.stderr[-2000:]
    # without the guard paddle's handler takes SIGTERM (else this test would prove nothing)
    bare = _python(code.replace("IMPORT", "import paddle"))
    assert bare.returncode != 7, bare.stderr[-2000:]


def test_a_check_hashes_each_artifact_once_and_still_catches_tampering(tmp_path, monkeypatch):
    from wherry import runtimes
    from wherry.convert import pipeline
    from wherry.runtimes import bundle as bundle_module

    out = tmp_path / "out"
    pipeline.convert(pipeline.ConvertOptions(model=str(example.MODEL), targets=["desktop-x86_64"], out=out,
                                             inputs=str(example.INPUTS), formats=["onnx"], verify=False))
    folder = next(out.glob("*.desktop-x86_64"))
    hashed = []
    real = bundle_module.content_hash
    monkeypatch.setattr(bundle_module, "content_hash", lambda path: hashed.append(path.name) or real(path))
    report = runtimes.check(folder)
    assert report.ok
    assert sorted(hashed) == sorted(set(hashed)), f"a file was hashed twice: {hashed}"
    # altered after a check: the next check hashes again and fails it
    onnx = folder / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[-10] ^= 0xFF
    onnx.write_bytes(bytes(data))
    report = runtimes.check(folder)
    assert not report.ok and "does not match its manifest hash" in report.results[0].reason


def test_one_check_child_serves_every_target_of_a_conversion(tmp_path, monkeypatch):
    """Two targets, one isolated verification child (one interpreter start and one set of imports),
    started ahead so it warms up during the golden run."""
    from wherry.convert import pipeline
    from wherry.runtimes import isolate

    started = []   # isolated children started ahead (prewarmed) or for an artifact of a staged bundle
    real_init = isolate.IsolatedBackend.__init__

    def counting_init(self, target, *args, **kwargs):
        if target is None or ".tmp-" in Path(target.path).parent.name:
            started.append(target and target.path)
        return real_init(self, target, *args, **kwargs)

    monkeypatch.setattr(isolate.IsolatedBackend, "__init__", counting_init)
    results = pipeline.convert(pipeline.ConvertOptions(model=str(example.MODEL), inputs=str(example.INPUTS),
                                                       targets=["desktop-x86_64", "rpi4"], out=tmp_path))
    verdicts = {(r.target, a.file): a.status for r in results for a in r.check.results}
    assert verdicts[("desktop-x86_64", "model.onnx")] == "passed"
    assert verdicts[("rpi4", "model.onnx")] == "passed"
    assert started == [None], started
