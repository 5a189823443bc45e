"""Every translator, verified: each op case (tests/op_cases.py) exported as PIR, translated, and run in
Paddle Inference against the PIR original. Adding an op to the translator adds one case."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from conftest import CACHE, PADDLE_VERSION, REPO
from op_cases import CASES
from wherry import runtimes
from wherry.convert import pir
from wherry.runtimes import parity


@pytest.fixture(scope="session")
def pir_cases():
    """All cases exported once (one process: importing paddle dominates), cached like the other models."""
    folder = CACHE / "op-cases" / f"paddle-{PADDLE_VERSION}" / "pir"
    missing = [name for name in CASES if not (folder / name / "model.json").is_file()]
    if missing:
        subprocess.run([sys.executable, str(REPO / "tests" / "op_cases.py"), "pir", str(folder), *missing],
                       check=True, capture_output=True)
    return folder


@pytest.mark.parametrize("name", sorted(CASES))
def test_translation_matches_the_pir_original(name, pir_cases, tmp_path):
    folder = pir_cases / name
    kinds = pir.analyze(folder / "model.json")
    assert not [p for k in kinds.values() for p in k.problems]
    result = pir.translate(folder / "model.json", folder / "model.pdiparams", tmp_path)
    feeds = dict(np.load(folder / "inputs.npz"))
    with runtimes.open(str(folder / "model.json")) as original:
        golden = original.run(feeds)
    with runtimes.open(str(result.model_file)) as translated:
        outputs = translated.run(feeds)
    assert list(outputs) == list(golden)
    verdicts = parity.compare(golden, outputs, {k: parity.default_tolerance("fp32") for k in golden})
    assert all(v.passed for v in verdicts), [v.to_json() for v in verdicts]
    # integer outputs (indices, counters) must be exact, not just close
    for key, value in golden.items():
        if value.dtype.kind in "iub":
            np.testing.assert_array_equal(outputs[key], value)


def test_an_inherited_legacy_mode_flag_does_not_break_pir_reading(pir_cases, tmp_path):
    """FLAGS_enable_pir_api=0 in the caller's environment: the command and the API still read PIR;
    a process that already imported Paddle in legacy mode gets a clear error, not Paddle's."""
    import os

    model = pir_cases / "embedding" / "model.json"
    env = dict(os.environ, FLAGS_enable_pir_api="0")
    cli = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "convert", str(model), "--format", "onnx",
                          "-o", str(tmp_path / "cli"), "--inputs", str(model.parent / "inputs.npz")],
                         env=env, capture_output=True, text=True)
    assert cli.returncode == 0, cli.stderr
    script = ("import sys, paddle\nfrom wherry.convert import convert\nfrom wherry.runtimes import ModelError\n"
              "try:\n    convert(sys.argv[1], out=sys.argv[2], formats='onnx')\n"
              "except ModelError as e:\n    print('MODELERROR', e.message)\n")
    api = subprocess.run([sys.executable, "-c", script, str(model), str(tmp_path / "api")], env=env,
                         capture_output=True, text=True)
    assert "MODELERROR" in api.stdout and "FLAGS_enable_pir_api=0" in api.stdout, api.stdout + api.stderr
    assert not (tmp_path / "api").exists() or not any((tmp_path / "api").iterdir())
