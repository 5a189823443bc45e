"""Sequence (LoD) inputs: a Paddle 1.x GRU + CRF tagger converts with real sequence lengths."""
from __future__ import annotations

import json

import numpy as np
import pytest

from wherry import runtimes
from support.models import export_sequence_model, write_sentences


@pytest.fixture(scope="module")
def tagger_inputs(tmp_path_factory):
    """Three sentences of 4, 7 and 2 word ids, as a user gives them: rows + NAME.lengths."""
    return write_sentences(tmp_path_factory.mktemp("seq") / "sentences.npz", [4, 7, 2], seed=3)


def test_tagger_converts_with_real_lengths_lite_matches_and_onnx_is_not_representable(wherry, tmp_path,
                                                                                       tagger_inputs):
    proc = wherry("convert", export_sequence_model(), "--inputs", tagger_inputs, "-o", tmp_path, "--name", "tagger",
                  "--json", check=0)
    (summary,) = json.loads(proc.stdout)["bundles"]
    statuses = {a["file"]: a["status"] for a in summary["report"]["verification"]["artifacts"]}
    assert statuses == {"model.x86.nb": "passed", "model.onnx": "not representable"}
    bundle = tmp_path / "tagger.desktop-x86_64"
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["source"]["format"] == "paddle1"
    assert manifest["inputs"][0] == {"name": "words", "dtype": "int64", "shape": [None, 1], "lod_level": 1}
    (onnx,) = manifest["not_built"]
    assert onnx["status"] == "not representable" and "sequence (LoD)" in onnx["reason"]
    golden = np.load(bundle / "golden" / "inputs.npz")
    assert golden["words.lengths"].tolist() == [4, 7, 2]
    outputs = np.load(bundle / "golden" / "outputs.npz")
    path = next(v for v in outputs.values() if v.dtype == np.int64)
    assert path.shape == (13, 1) and len(set(path.ravel().tolist())) > 1, "a real Viterbi path, not constant"
    # the bundle checks on its own (Lite fed the lengths), the ONNX artifact is said, never passed
    check = wherry("check", bundle, "--json", check=0)
    assert {a["file"]: a["status"] for a in json.loads(check.stdout)["artifacts"]} == statuses


def test_lengths_change_the_result_and_lite_follows(tmp_path):
    """The same rows split into other sequences give another CRF path: the lengths really reach Lite."""
    from wherry.convert import legalize, lite_export, normalize, source

    info = source.read(export_sequence_model())
    legacy = normalize.to_legacy(info, tmp_path)
    model, params, _ = legalize.legalize(legacy.model_file, legacy.params_file, tmp_path / "legal")
    nb = lite_export.export_nb(model, params, tmp_path / "m.nb", ["x86"]).nb_file
    ids = np.random.default_rng(4).integers(0, 60, size=(10, 1)).astype("int64")
    results = {}
    for split in ([10], [3, 3, 4]):
        feeds = {"words": ids, "words.lengths": np.array(split)}
        with runtimes.open(str(info.files.param_dir), backend="paddle", isolate=True) as ref:
            expected = ref.run(feeds)
        with runtimes.open(str(nb), isolate=True) as lite:
            got = lite.run(feeds)
        for want, have in zip(expected.values(), got.values()):
            np.testing.assert_allclose(have, want, atol=1e-5)
        results[len(split)] = list(expected.values())[0]
    assert not np.allclose(results[1], results[3])


def test_missing_lengths_is_one_message_with_a_hint(wherry, tmp_path):
    ids = tmp_path / "ids.npz"
    np.savez(ids, words=np.zeros((5, 1), "int64"))
    proc = wherry("convert", export_sequence_model(), "--inputs", ids, "-o", tmp_path, check=2)
    assert "sequence (LoD) input" in proc.stderr and "--lod words=" in proc.stderr
    assert "Traceback" not in proc.stderr and not list(tmp_path.glob("*.desktop-x86_64"))


def test_paddles_own_error_becomes_one_line_with_its_hint_and_op():
    """Paddle's report for a sequence model fed without LoD is ~40 lines of C++ traceback; one line remains."""
    import os
    import subprocess
    import sys

    from wherry.runtimes.paddle_errors import summarize

    script = ("import numpy as np, paddle.inference as pi, sys\n"
              "c = pi.Config(sys.argv[1]); c.disable_gpu(); c.switch_ir_optim(False); c.disable_mkldnn()\n"
              "p = pi.create_predictor(c); h = p.get_input_handle('words'); h.reshape([5, 1])\n"
              "h.copy_from_cpu(np.zeros((5, 1), 'int64'))\n"
              "try:\n    p.run()\nexcept Exception as e:\n    sys.stdout.write(str(e))\n")
    text = subprocess.run([sys.executable, "-c", script, str(export_sequence_model())], capture_output=True,
                          text=True, env={**os.environ, "GLOG_minloglevel": "3"}).stdout
    assert len(text.splitlines()) > 5
    message, hint = summarize(text)
    assert "\n" not in message and "Only support one level sequence" in message and "in op gru" in message
    assert hint and "lods.size()" in hint
