"""Independent artifacts: one exporter failing never discards the others.

A real failure, not a simulated one: the swish model with --skip-pass restore-attrs makes Paddle Lite's
opt abort (swish without beta) while paddle2onnx converts it fine.
"""
from __future__ import annotations

import json
import sys
import subprocess

import pytest

from support.models import export_legal_model
from support.paths import REPO


@pytest.fixture(scope="module")
def half_built(tmp_path_factory):
    """(bundle dir, CompletedProcess) of a convert whose .nb cannot be built."""
    out = tmp_path_factory.mktemp("fates")
    proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "convert", str(export_legal_model("swish")),
                           "-o", str(out), "--name", "swish", "--skip-pass", "restore-attrs"],
                          capture_output=True, text=True, cwd=REPO, timeout=600)
    return out / "swish.desktop-x86_64", proc


def test_convert_ships_what_was_built_and_exits_1(half_built):
    bundle, proc = half_built
    assert proc.returncode == 1, proc.stderr
    assert (bundle / "model.onnx").is_file() and not (bundle / "model.x86.nb").exists()
    assert "NOT BUILT" in proc.stdout and "model.x86.nb" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert not [p for p in bundle.parent.iterdir() if p.name.startswith(".")], "no staging leftovers"


def test_manifest_and_report_say_which_tool_failed_why_and_what_to_do(half_built):
    bundle, _ = half_built
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert [a["file"] for a in manifest["artifacts"]] == ["model.onnx"]
    (missing,) = manifest["not_built"]
    assert missing["file"] == "model.x86.nb" and missing["tool"] == "Paddle Lite opt"
    assert missing["status"] == "failed to build"
    assert "No attributes called beta" in missing["reason"] and "\n" not in missing["reason"]
    assert "restore-attrs" in missing["hint"]
    report = json.loads((bundle / "report.json").read_text())
    assert report["not_built"][0]["file"] == "model.x86.nb"
    assert any("model.x86.nb: not built" in w for w in report["warnings"])


@pytest.mark.parametrize("runner", [["-m", "wherry.convert.cli", "check"], ["-m", "wherry.runtimes", "check"]],
                         ids=["wherry", "runtimes"])
def test_check_names_the_missing_artifact_as_not_built(half_built, runner, tmp_path):
    bundle, _ = half_built
    junit = tmp_path / "junit.xml"
    proc = subprocess.run([sys.executable, *runner, str(bundle), "--junit", str(junit)], capture_output=True,
                          text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "NOT BUILT" in proc.stdout and "1 passed, 0 failed, 0 not verifiable here, 1 not built" in proc.stdout
    assert 'message="not built:' in junit.read_text()
    as_json = subprocess.run([sys.executable, *runner, str(bundle), "--json"], capture_output=True, text=True,
                             cwd=REPO, timeout=300)
    statuses = {a["file"]: a["status"] for a in json.loads(as_json.stdout)["artifacts"]}
    assert statuses == {"model.onnx": "passed", "model.x86.nb": "not built"}


def test_asking_to_run_a_missing_artifact_says_it_was_not_built(half_built, wherry):
    bundle, _ = half_built
    proc = wherry("run", bundle, "--artifact", "model.x86.nb", "--out", bundle.parent / "o.npz", check=2)
    assert "was not built" in proc.stderr and "Traceback" not in proc.stderr


def test_require_all_fails_before_publishing_anything(tmp_path, wherry):
    proc = wherry("convert", export_legal_model("swish"), "-o", tmp_path, "--name", "swish",
                  "--skip-pass", "restore-attrs", "--require-all", "-t", "desktop-x86_64", "-t", "rpi4", check=2)
    # the first target built names its .nb (targets checked on the emulated board are built first)
    assert "could not be built" in proc.stderr and ("model.x86.nb" in proc.stderr or "model.arm.nb" in proc.stderr)
    assert list(tmp_path.iterdir()) == []


def test_pytest_plugin_fails_the_missing_artifact(half_built, tmp_path):
    import os

    bundle, _ = half_built
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:wherry", "-p", "wherry.runtimes.pytest_plugin",
                           "-p", "no:cacheprovider", "--wherry-bundle", str(bundle), "-v"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "model.x86.nb::not-built FAILED" in proc.stdout and "model.onnx::" in proc.stdout
    assert "No attributes called beta" in proc.stdout


def _cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "wherry.convert.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout)


def test_an_arm_nb_that_never_ran_is_never_summarised_as_passed(tmp_path):
    """An OpenCL .nb (android-arm64) runs on no device here, not even the emulated board: the bundle with a
    passing ONNX beside it is PARTLY VERIFIED, --strict fails it in convert and in check alike, and with the
    .nb alone nothing is verified, which both commands fail the same way (convert used to exit 0)."""
    from wherry.convert.example import INPUTS, MODEL

    phone = tmp_path / "phone.toml"   # android-arm64 with an ONNX artifact beside its .nb
    phone.write_text((REPO / "targets/profiles/android-arm64.toml").read_text()
                     .replace('name = "android-arm64"', 'name = "phone"').replace('["nb"]', '["nb", "onnx"]'))
    both = _cli("convert", MODEL, "--inputs", INPUTS, "-t", phone, "-o", tmp_path / "both", "--json")
    assert both.returncode == 0, both.stderr
    (bundle,) = json.loads(both.stdout)["bundles"]
    assert bundle["verdict"] == "partly verified" and bundle["ok"]
    assert {a["file"]: a["verdict"] for a in bundle["artifacts"]} == {
        "model.arm-opencl.nb": "not verifiable here", "model.onnx": "passed"}
    path = bundle["path"]

    table = _cli("check", path)
    assert table.returncode == 0 and "PARTLY VERIFIED  digits_cnn: 1 passed" in table.stdout, table.stdout
    assert not [line for line in table.stdout.splitlines() if line.startswith("PASS")]
    for strict in (_cli("check", path, "--strict"),
                   _cli("convert", MODEL, "--inputs", INPUTS, "-t", phone, "-o", tmp_path / "both", "--force",
                        "--strict")):
        assert strict.returncode == 1, strict.stdout + strict.stderr
        assert "not verified on this device: model.arm-opencl.nb" in strict.stdout + strict.stderr
    page = tmp_path / "check.html"
    assert _cli("check", path, "--html", page).returncode == 0
    html = page.read_text()
    assert "PARTLY VERIFIED" in html and "1 of 2 artifacts ran on this device" in html
    assert "&nbsp;PASS&nbsp;" not in html

    alone = _cli("convert", MODEL, "--inputs", INPUTS, "-t", "android-arm64", "-o", tmp_path / "alone")
    checked = _cli("check", tmp_path / "alone" / "digits_cnn.android-arm64")
    assert alone.returncode == checked.returncode == 1, alone.stderr + checked.stdout
    assert "NOT VERIFIED" in alone.stdout and "NOT VERIFIED" in checked.stdout
    assert "nothing could be verified on this host" in alone.stderr and "--no-verify" in alone.stderr
    assert "Traceback" not in alone.stderr
    unverified = _cli("convert", MODEL, "-t", "android-arm64", "-o", tmp_path / "unverified", "--no-verify")
    assert unverified.returncode == 0, unverified.stderr   # asked not to verify: nothing judged
