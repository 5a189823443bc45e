"""The web as a target: a bundle's ONNX artifacts in onnxruntime-web (the npm package, pinned) in the
system's headless Chromium, judged against golden. Real browser, real onnxruntime-web, no mocks; skipped
with the reason where Chromium (or npm for the first setup) is missing."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

from support.hostile_fixtures import reseal

pytestmark = pytest.mark.web

ALL = ("model.onnx", "model.fp16.onnx", "model.int8.onnx")
SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"


def validate(name: str, document: dict) -> None:
    import jsonschema

    jsonschema.validate(document, json.loads((SCHEMAS / f"{name}.schema.json").read_text()))


@pytest.fixture(scope="module")
def web_ready():
    """Chromium present and onnxruntime-web set up (fetched from npm on first use, then cached)."""
    from wherry.runtimes.errors import WherryError
    from wherry.targets.web import browser, ortweb

    try:
        browser.find()
    except WherryError as exc:
        pytest.skip(f"no browser here: {exc.message}")
    try:
        ortweb.package_dir()
    except WherryError as exc:
        pytest.skip(f"onnxruntime-web cannot be set up here: {exc.message}")


@pytest.fixture(scope="module")
def bundle(wherry, web_ready, tmp_path_factory):
    """The trained digits CNN (the example) converted for the web target: fp32, fp16 and int8 QDQ ONNX."""
    from wherry.convert import example

    folder = tmp_path_factory.mktemp("web")
    examples = Path(example.MODEL).parent
    calib = folder / "calib.npz"
    np.savez(calib, x=np.load(examples / "digits_eval.npz")["x"][:64])
    wherry("convert", example.MODEL, "--inputs", examples / "digits_inputs.npz", "-t", "web",
           "--precision", "fp32,fp16,int8", "--calib", calib, "-o", folder, "-q", check=0)
    return folder / "digits_cnn.web"


def _check(wherry, bundle, device, *extra, code=None):
    proc = wherry("check", bundle, "--device", device, "--json", *extra, check=code)
    return json.loads(proc.stdout), proc


def test_web_profile_builds_onnx_only(bundle):
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["target"]["name"] == "web"
    assert sorted(a["file"] for a in manifest["artifacts"]) == sorted(ALL)
    assert {a["format"] for a in manifest["artifacts"]} == {"onnx"}


def test_fp32_fp16_int8_pass_in_the_browser_on_wasm(wherry, bundle, tmp_path):
    junit = tmp_path / "web.xml"
    report, _ = _check(wherry, bundle, "browser", "--junit", junit, code=0)
    assert report["schema"] == "wherry.check.v1" and report["ok"]
    status = {a["file"]: a for a in report["artifacts"]}
    assert set(status) == set(ALL)
    for name in ALL:
        assert status[name]["status"] == "passed", status[name]
    assert status["model.onnx"]["outputs"][0]["max_abs"] < 1e-4  # measured: 7.6e-6 against Paddle's golden
    device = report["device"]
    assert device["browser"].startswith("Chromium") and device["onnxruntime_web"] == "1.30.0"
    assert device["execution_provider"] == "wasm" and device["build"].endswith("ort.wasm.min.mjs")
    # COOP/COEP make the page cross-origin isolated: the 2 threads asked for are really used
    assert device["cross_origin_isolated"] is True and device["threads"] == 2
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("tests") == "3" and suite.get("failures") == "0"


def test_tampered_bundle_fails_in_the_browser(wherry, bundle, tmp_path):
    # golden outputs rewritten and resealed (an attacker who can rewrite the manifest): only the run can tell
    forged = tmp_path / "forged"
    shutil.copytree(bundle, forged)
    golden = forged / "golden" / "outputs.npz"
    arrays = dict(np.load(golden))
    np.savez(golden, **{k: (v[:, ::-1] * 1.5).copy() for k, v in arrays.items()})
    reseal(forged)
    report, proc = _check(wherry, forged, "browser", "--artifact", "model.onnx", code=1)
    (result,) = report["artifacts"]
    assert result["status"] == "failed" and "failing output" in result["reason"]
    assert report["device"]["execution_provider"] == "wasm"  # it did run in the browser
    # an artifact whose bytes changed fails on its hash, before any browser starts
    broken = tmp_path / "broken"
    shutil.copytree(bundle, broken)
    model = broken / "model.int8.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    report, _ = _check(wherry, broken, "browser", code=1)
    status = {a["file"]: a for a in report["artifacts"]}
    assert status["model.int8.onnx"]["status"] == "failed" and "manifest hash" in status["model.int8.onnx"]["reason"]
    assert status["model.onnx"]["status"] == "passed"


def test_webgpu_is_correct_or_not_verifiable_and_labelled_emulated(wherry, bundle):
    report, _ = _check(wherry, bundle, "browser:webgpu")
    device = report["device"]
    adapter = device.get("webgpu_adapter") or {}
    if not adapter.get("available"):
        pytest.skip(f"this Chromium exposes no WebGPU adapter: {adapter.get('why')}")
    assert device["build"].endswith("ort.webgpu.min.mjs")
    if adapter.get("architecture") == "swiftshader":
        assert device["emulated"] is True and "emulated GPU: SwiftShader" in device["machine"]
    status = {a["file"]: a for a in report["artifacts"]}
    assert status["model.onnx"]["status"] == "passed"
    assert status["model.int8.onnx"]["status"] == "passed"  # measured correct on this backend
    fp16 = status["model.fp16.onnx"]
    if "shader-f16" in adapter.get("features", []):
        assert fp16["status"] == "passed"
    else:  # refused cleanly: said so, not counted as a pass nor as a broken artifact
        assert fp16["status"] == "not verifiable here" and "shader-f16" in fp16["reason"]


def test_webgpu_wrong_outputs_are_never_a_pass(wherry, bundle):
    """The older JSEP WebGPU backend (ort.all) returns wrong numbers with no error on int8/fp16: the golden
    comparison fails them and names the known case."""
    report, proc = _check(wherry, bundle, "browser:webgpu-jsep")
    adapter = report["device"].get("webgpu_adapter") or {}
    if not adapter.get("available"):
        pytest.skip("this Chromium exposes no WebGPU adapter")
    golden = next(iter(np.load(bundle / "golden" / "outputs.npz").values()))
    scale = float(np.abs(golden).max())
    for art in report["artifacts"]:
        for out in art["outputs"]:
            if art["status"] == "passed":  # a pass must carry numbers that really are close to golden
                assert out["max_abs"] <= 0.3 * scale and out["cosine"] >= 0.98, art
        if art["status"] == "failed":
            assert any("known to return wrong numbers WITHOUT an error" in n for n in art["notes"]), art
    if adapter.get("architecture") == "swiftshader":  # measured here with Chromium 156 and 1.30.0
        status = {a["file"]: a["status"] for a in report["artifacts"]}
        assert status["model.int8.onnx"] == "failed", "the known silent-garbage case did not happen: " \
            "if upstream fixed it, update docs/web.md and this test"
        assert proc.returncode == 1 and "FAIL" not in proc.stdout  # --json: the table is not printed


def test_bench_in_the_browser_against_native(wherry, bundle):
    proc = wherry("bench", bundle, "--device", "browser", "--runs", "10", "--warmup", "2", "--json", check=0)
    result = json.loads(proc.stdout)
    validate("web-bench", result)
    assert result["schema"] == "wherry.web-bench.v1" and result["backend"] == "onnxruntime-web"
    assert [row["threads"] for row in result["rows"]] == [1, 2]
    for row in result["rows"]:
        assert row["threads_used"] == row["threads"]
        assert 0 < row["min_ms"] <= row["p50_ms"] and row["native_p50_ms"] > 0
        assert row["ratio_p50"] == pytest.approx(row["p50_ms"] / row["native_p50_ms"], rel=0.02)


def test_inspect_web_preflight(wherry, bundle):
    proc = wherry("inspect", bundle, "-t", "web", "--json", check=0)
    report = json.loads(proc.stdout)
    validate("web-inspect", report)
    assert report["schema"] == "wherry.web-inspect.v1"
    arts = {a["file"]: a for a in report["artifacts"]}
    assert set(arts) == set(ALL)
    for art in arts.values():
        assert art["wasm_missing"] == []  # it loads: the wasm check above passed
    int8 = {r["op"]: r for r in arts["model.int8.onnx"]["ops"]}
    assert int8["Conv"]["webgpu"] == "kernel" and int8["DequantizeLinear"]["wasm"] == "kernel"
    assert "webgpu-operators.md" in report["sources"]["webgpu"]
    text = wherry("inspect", bundle / "model.onnx", "-t", "web", check=0).stdout
    assert "wasm     all ops have a kernel" in text


def test_info_names_the_browser_and_its_execution_provider(wherry, web_ready):
    info = json.loads(wherry("info", "--device", "browser", "--json", check=0).stdout)
    validate("web-info", info)
    assert info["browser"].startswith("Chromium") and info["execution_provider"] == "wasm"
    assert info["cross_origin_isolated"] is True and info["threads"] == 2


def test_unknown_browser_execution_provider_is_a_user_error(wherry, bundle):
    proc = wherry("check", bundle, "--device", "browser:nosuch", check=2)
    assert "unknown browser execution provider" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_prerequisites_are_one_message_each(tmp_path, monkeypatch):
    """No browser, no npm: a readable error with a hint each (these need neither, so they run everywhere)."""
    import subprocess
    import sys

    from wherry.targets.web import browser, ortweb

    monkeypatch.setenv("WHERRY_BROWSER", str(tmp_path / "no-such-chrome"))
    with pytest.raises(ortweb.WebSetupError) as exc:
        browser.find()
    assert "WHERRY_BROWSER" in exc.value.message and exc.value.hint
    monkeypatch.setenv("WHERRY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))  # no npm on it
    with pytest.raises(ortweb.WebSetupError) as exc:
        ortweb.package_dir()
    assert "npm is not installed" in exc.value.message and "apt-get install npm" in exc.value.hint
    assert not (tmp_path / "cache" / "web" / f"onnxruntime-web-{ortweb.VERSION}").exists()  # nothing half-made
    proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "info", "--device", "browser"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "WHERRY_BROWSER" in proc.stderr and "hint:" in proc.stderr
