"""Edge runtimes beyond Lite and ONNX Runtime, each converted and checked in a tool environment of its own.

The format's plumbing (an IR is two files, hashed together; ``.xml`` opens the OpenVINO backend; the
profile loads) is tested in the default run: it needs no tool. The real conversions of the digits
example need the tool environments (~500-650 MB each from PyPI, made once and cached in wherry's user
cache, ``$WHERRY_CACHE``): they run with ``-m edge`` and skip, with the reason, where an environment
cannot be made here.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from wherry import runtimes
from wherry.convert import example, tool_env
from wherry.runtimes.bundle import content_hash, load_bundle
from wherry.runtimes.errors import BundleError
from wherry.targets import load_profile


def _environment(module):
    """The python of ``module``'s tool environment, made if needed; skip with the reason where it cannot be."""
    try:
        return tool_env.ensure(module.ENV)
    except tool_env.ToolUnavailable as exc:
        pytest.skip(f"{module.ENV.label} cannot be installed here: {exc.message.splitlines()[0]}")


# ------------------------------------------------------------------ plumbing (default run, no tool needed)

def test_an_ir_is_hashed_with_its_weights_and_opens_with_openvino(tmp_path):
    xml, weights = tmp_path / "model.xml", tmp_path / "model.bin"
    xml.write_text("<net/>")
    weights.write_bytes(b"\0" * 16)
    before = content_hash(xml)
    weights.write_bytes(b"\1" * 16)
    assert content_hash(xml) != before      # changed weights change the artifact's hash
    target = runtimes.session.resolve(xml)
    assert target.backend == "openvino"


def test_openvino_profile_builds_the_ir_beside_the_onnx():
    profile = load_profile("openvino")
    assert profile.artifacts == ["onnx", "openvino"] and profile.arch == "x86_64"


# ------------------------------------------------------------------ real conversions (-m edge)

@pytest.fixture(scope="module")
def openvino_bundle(wherry, tmp_path_factory):
    from wherry.convert import openvino_export

    _environment(openvino_export)
    out = tmp_path_factory.mktemp("openvino")
    proc = wherry("convert", "--example", "-t", "openvino", "-o", out, "--precision", "fp32,int8",
                  "--calib", example.CALIB, "--json", check=0)
    return json.loads(proc.stdout)["bundles"][0], out / "digits_cnn.openvino"


@pytest.mark.edge
def test_openvino_ir_fp32_and_int8_pass_against_golden_in_f32(openvino_bundle):
    record, folder = openvino_bundle
    outcomes = {a["file"]: a for a in record["artifacts"]}
    checked = {r["file"]: r for r in record["report"]["verification"]["artifacts"]}
    for file, max_abs in (("model.xml", 1e-4), ("model.int8.xml", None)):
        assert outcomes[file]["verdict"] == "passed", outcomes[file]
        assert "OpenVINO 2026.4.1's CPU plugin in f32" in checked[file]["reason"]   # where it ran: not this host
        if max_abs is not None:
            assert max(o["max_abs"] for o in checked[file]["outputs"]) < max_abs
    manifest = json.loads((folder / "manifest.json").read_text())
    ir = {a["file"]: a for a in manifest["artifacts"] if a["format"] == "openvino"}
    assert set(ir) == {"model.xml", "model.int8.xml"} and all(a["runtime"] == "openvino" for a in ir.values())
    assert any("FakeQuantize" in n for n in ir["model.int8.xml"]["notes"])
    assert (folder / "model.int8.bin").stat().st_size < 0.5 * (folder / "model.bin").stat().st_size
    assert record["verdict"] == "passed"


@pytest.mark.edge
def test_the_ir_runs_through_the_one_session_interface(openvino_bundle):
    """runtimes.open on the .xml in the OpenVINO environment: the same outputs as the golden run."""
    import subprocess

    from wherry.convert import openvino_export

    _, folder = openvino_bundle
    python = _environment(openvino_export)
    code = ("import json, sys, numpy as np; from wherry import runtimes\n"
            "s = runtimes.open(sys.argv[1] + '/model.xml')\n"
            "x = np.load(sys.argv[1] + '/golden/inputs.npz')\n"
            "out = s.run({k: x[k] for k in x.files})\n"
            "print(json.dumps({'backend': s.backend, 'inputs': [i.name for i in s.inputs], "
            "'out': {k: v.tolist() for k, v in out.items()}}))")
    with __import__("tempfile").TemporaryDirectory() as tmp:
        env = {"PYTHONPATH": str(tool_env.code_dir(__import__("pathlib").Path(tmp))), "PATH": "/usr/bin:/bin"}
        proc = subprocess.run([str(python), "-c", code, str(folder)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    golden = np.load(folder / "golden" / "outputs.npz")
    assert data["backend"] == "openvino" and data["inputs"] == ["x"]
    for name, values in data["out"].items():
        np.testing.assert_allclose(np.array(values), golden[name], atol=1e-4)


@pytest.mark.edge
def test_an_ir_without_its_weights_or_with_other_weights_is_refused(openvino_bundle, tmp_path):
    _, folder = openvino_bundle
    copy = tmp_path / "bundle"
    shutil.copytree(folder, copy)
    bundle = load_bundle(copy)
    xml = bundle.manifest.artifact("model.xml")
    (copy / "model.bin").write_bytes((copy / "model.int8.bin").read_bytes())
    with pytest.raises(BundleError, match="does not match its manifest hash"):
        load_bundle(copy).verify_artifact(xml)
    (copy / "model.bin").unlink()
    with pytest.raises(BundleError, match="model.bin .part of artifact model.xml. is missing"):
        load_bundle(copy).verify_artifact(xml)
