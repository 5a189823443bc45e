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
