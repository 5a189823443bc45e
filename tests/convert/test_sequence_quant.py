"""int8 of a sequence (LoD) model: the calibration file's NAME.lengths reach Paddle's PTQ (issue #25, item 4).

The Paddle 1.x GRU + CRF tagger (tests/support/export_sequence_model.py) takes int64 word ids [?, 1] with one
LoD level. Its calibration file is laid out as ``--inputs`` is: ``words`` the rows of every sequence one after
another, ``words.lengths`` one length per sequence, each sequence one calibration sample.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from support.models import export_sequence_model, write_sentences
from wherry.runtimes.errors import InputError

CALIB_LENGTHS = np.random.default_rng(11).integers(2, 12, size=24)   # 24 sentences of 2-11 words, 156 words


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    return write_sentences(tmp_path_factory.mktemp("seqcalib") / "calib.npz", CALIB_LENGTHS, seed=12)


@pytest.fixture(scope="module")
def sentences(tmp_path_factory):
    """The golden inputs of tests/convert/test_sequence_inputs.py: three sentences of 4, 7 and 2 word ids."""
    return write_sentences(tmp_path_factory.mktemp("seqgolden") / "sentences.npz", [4, 7, 2], seed=3)


def test_calibration_layout_keeps_each_sequence_as_one_sample(calib):
    from wherry.convert import source
    from wherry.convert.quantize.calibration import load_calibration, unpad

    feeds = load_calibration(calib, source.read(export_sequence_model()).inputs)
    rows = np.load(calib)["words"]
    assert feeds["words"].shape == (24, int(CALIB_LENGTHS.max()), 1)
    assert feeds["words.lengths"].tolist() == CALIB_LENGTHS.tolist()
    starts = np.concatenate([[0], np.cumsum(CALIB_LENGTHS)])
    for i in (0, 11, 23):
        sample = unpad(feeds, i)
        assert sample["words.lengths"].tolist() == [CALIB_LENGTHS[i]]
        np.testing.assert_array_equal(sample["words"], rows[starts[i]:starts[i + 1]])


@pytest.mark.parametrize("change, message", [
    (lambda d: {"words": d["words"]}, "lacks 'words.lengths': 'words' is a sequence (LoD) input"),
    (lambda d: {**d, "words.lengths": d["words.lengths"][:-1]}, "'words.lengths' add up to 149, but 'words' has 156"),
    (lambda d: {**d, "words.lengths": np.r_[d["words.lengths"][:-1], 0, d["words.lengths"][-1]]},
     "'words.lengths' must be a 1-D array of positive integers"),
], ids=["no lengths", "lengths short of the rows", "an empty sequence"])
def test_bad_lengths_are_refused_in_one_line(tmp_path, calib, change, message):
    from wherry.convert import source
    from wherry.convert.quantize.calibration import load_calibration

    bad = tmp_path / "bad.npz"
    np.savez(bad, **change(dict(np.load(calib))))
    with pytest.raises(InputError) as caught:
        load_calibration(bad, source.read(export_sequence_model()).inputs)
    assert message in caught.value.message and "\n" not in caught.value.message


def test_calib_without_lengths_stops_the_conversion_naming_the_key(wherry, tmp_path, calib, sentences):
    ids = tmp_path / "ids.npz"
    np.savez(ids, words=np.load(calib)["words"])
    proc = wherry("convert", export_sequence_model(), "--inputs", sentences, "--precision", "fp32,int8",
                  "--calib", ids, "-t", "rpi4", "-o", tmp_path / "out", check=2)
    (error,) = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert "lacks 'words.lengths'" in error and "sequence (LoD) input" in error
    assert "Traceback" not in proc.stderr and not list((tmp_path / "out").glob("*rpi4*"))


def test_int8_nb_is_built_from_lod_calibration(wherry, tmp_path, calib, sentences):
    """PTQ is fed LoD tensors with the calibration lengths (read back from the tensors Paddle got); opt gives both
    mul ops int8 kernels. The verdict is the true one: the ARM kernels run only on the emulated board."""
    from wherry.convert import board_check
    from wherry.targets.profile import load_profile

    board = board_check.runtime_built(load_profile("rpi4"))
    proc = wherry("convert", export_sequence_model(), "--inputs", sentences, "--precision", "fp32,int8",
                  "--calib", calib, "-t", "rpi4", "-o", tmp_path, "--name", "tagger", "--json", check=None)
    (summary,) = json.loads(proc.stdout)["bundles"]
    verdicts = {a["file"]: a["verdict"] for a in summary["artifacts"]}
    manifest = json.loads((tmp_path / "tagger.rpi4" / "manifest.json").read_text())
    (int8,) = [a for a in manifest["artifacts"] if a["file"] == "model.arm.int8.nb"]
    assert (tmp_path / "tagger.rpi4" / "model.arm.int8.nb").stat().st_size == int8["size"] > 0
    notes = " ".join(int8["notes"])
    assert "mul/int8 x2" in notes and "minmax on 24 calibration samples" in notes
    assert "PTQ fed words as 24 LoD tensors of 2-11 rows (156 rows)" in notes
    (row,) = [r for r in summary["report"]["quantization"]["rows"] if r["artifact"] == "model.arm.int8.nb"]
    assert (row["quantized_layers"], row["weight_layers"]) == (2, 2)
    assert verdicts["model.onnx"] == "not representable"
    if not board:
        assert verdicts["model.arm.int8.nb"] == verdicts["model.arm.nb"] == "not verifiable here"
        assert proc.returncode == 1   # nothing could be verified on this host
    else:   # the emulated board ran it (Lite's ARM int8 kernels) against the golden outputs, int8's tolerance
        assert proc.returncode == 0
        assert verdicts["model.arm.nb"] == verdicts["model.arm.int8.nb"] == "passed"
        emission, path = summary["report"]["emulated_verification"]["model.arm.int8.nb"]["outputs"]
        assert 0 < emission["max_abs"] <= emission["limit"] and emission["cosine"] >= 0.98   # quantized, within
        assert path["dtype_match"] and path["max_abs"] == 0, "the same Viterbi tag path as the original model"


def test_ptq_program_on_paddle_inference_matches_golden_within_int8_tolerance(tmp_path, calib, sentences):
    """The quantized program PTQ wrote (quantize/dequantize ops in float: its int8 scales, not the ARM kernels),
    run by Paddle Inference on the golden sentences with their lengths, against the original model, judged by
    int8's default tolerance; the Viterbi path is the same."""
    from wherry import runtimes
    from wherry.convert import legalize, normalize, source
    from wherry.convert.quantize import lite_quant
    from wherry.convert.quantize.calibration import load_calibration
    from wherry.runtimes import parity

    info = source.read(export_sequence_model())
    legacy = normalize.to_legacy(info, tmp_path)
    model, params, _ = legalize.legalize(legacy.model_file, legacy.params_file, tmp_path / "legal")
    fed: dict = {}
    quantized = lite_quant.paddle_ptq(model, params, load_calibration(calib, info.inputs), tmp_path / "ptq", fed=fed)
    assert fed == {"samples": 24, "sequence_lengths": {"words": CALIB_LENGTHS.tolist()}}
    # as the pipeline does before opt: PTQ re-saves the program and clips what export had legalized
    quantized = legalize.legalize(quantized, quantized.with_suffix(".pdiparams"), tmp_path / "ptq-legal")[0]
    feeds = dict(np.load(sentences))
    with runtimes.open(str(info.files.param_dir), backend="paddle", isolate=True) as ref:
        golden = ref.run(feeds)
    with runtimes.open(str(quantized), backend="paddle", isolate=True) as session:
        got = dict(zip(golden, session.run(feeds).values()))
    tolerance = parity.default_tolerance("int8")
    results = parity.compare(golden, got, {name: tolerance for name in golden})
    assert all(r.verdict == "passed" for r in results), [r.reason for r in results]
    emission, path = golden.values()
    assert not np.array_equal(got[next(iter(golden))], emission), "the program really is quantized"
    np.testing.assert_array_equal(list(got.values())[1], path)


def test_eval_is_refused_for_sequence_models_in_one_line(calib):
    """Task metrics batch plain samples; a sequence model's --eval is refused up front, not crashed on later."""
    from wherry.convert import source
    from wherry.convert.quantize.calibration import load_eval

    with pytest.raises(InputError) as caught:
        load_eval(calib, source.read(export_sequence_model()).inputs)
    assert "--eval does not take models with sequence (LoD) inputs yet (words)" == caught.value.message
