"""docs/ci.md's workflow, run here: its `wherry` steps with its env values, in a scratch repository
holding the example model, so the published CI example cannot drift from the CLI."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from wherry.convert import example

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ci.md"


def workflow() -> str:
    text = DOC.read_text()
    return text.split("<!-- ci-workflow:start -->", 1)[1].split("<!-- ci-workflow:end -->", 1)[0]


def workflow_env(text: str) -> dict:
    block = text.split("\nenv:\n", 1)[1].split("\n\n", 1)[0]
    return {m.group(1): m.group(2) for m in re.finditer(r"^\s+([A-Z_]+): (\S+)", block, re.M)}


def wherry_steps(text: str):
    return [m.group(1) for m in re.finditer(r"^\s+- run: (wherry .*)$", text, re.M)]


def test_the_workflow_names_the_steps_this_test_runs():
    steps = wherry_steps(workflow())
    assert [s.split()[1] for s in steps] == ["-V", "targets", "convert", "check"]
    assert "build-lite" in steps[1] and "--strict" in steps[2]
    assert "--device emulated-aarch64" in steps[3] and "--junit" in steps[3] and "--strict" in steps[3]


@pytest.mark.slow  # the emulated board, like tests/targets/test_devices.py
def test_ci_example_steps_run(tmp_path, lite_runtime_settled):
    from support import lite_prebuild

    text = workflow()
    env = {**os.environ, **workflow_env(text), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    if lite_runtime_settled is None:
        # the workflow's build-lite step clones Lite's source from GitHub, which this machine may not reach:
        # it builds from the archive the tests use instead, or the test says exactly what is missing
        why = lite_prebuild.why_not_buildable()
        if why:
            pytest.skip("the workflow's `wherry targets build-lite` step cannot run here: " + "; ".join(why))
        env["WHERRY_LITE_SOURCE"] = lite_prebuild.vendor_archive() or ""
    repo = tmp_path / "repo"
    (repo / "models").mkdir(parents=True)
    for source in (example.MODEL, example.MODEL.with_suffix(".pdiparams"), example.INPUTS):
        shutil.copy(source, repo / "models" / source.name)
    for step in wherry_steps(text):
        proc = subprocess.run(["bash", "-eo", "pipefail", "-c", step], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=1800)
        assert proc.returncode == 0, f"{step}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    bundle = repo / "out" / f"{env['NAME']}.{env['TARGET']}"
    assert (bundle / "manifest.json").is_file() and (repo / "convert.json").is_file()
    suite = ET.parse(repo / f"junit-{env['TARGET']}.xml").getroot().find("testsuite")
    cases = suite.findall("testcase")
    passed = [c for c in cases if not list(c)]
    # ran on the aarch64 board, with Paddle Lite's ARM runtime the workflow built: every artifact passed
    assert {c.get("name").split("::")[0] for c in passed} == {"model.onnx", "model.arm.nb"}
    assert len(passed) == len(cases)
    assert suite.get("failures") == "0" and suite.get("hostname") and suite.get("timestamp")
