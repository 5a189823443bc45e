"""--eval task metrics (convert/quantize/tasks.py) on outputs whose right answer is known: CTC decoding
and CER, DB boxes and F1, mIoU; and the eval files they refuse, before any work starts."""
from __future__ import annotations

import numpy as np
import pytest

from wherry.convert.quantize import tasks
from wherry.runtimes.errors import InputError


def _ctc(sequences, steps, classes):
    """One-hot CTC scores [N, steps, classes] spelling each class sequence (0 = blank)."""
    out = np.zeros((len(sequences), steps, classes), "float32")
    for i, seq in enumerate(sequences):
        out[i, np.arange(steps), 0] = 1.0
        for t, k in enumerate(seq):
            out[i, t, 0], out[i, t, k] = 0.0, 1.0
    return out


def test_recognition_cer_through_greedy_ctc_decoding():
    charset = np.array([ord(c) for c in "abc "], "int32")       # classes 1..4
    truth = np.array([[ord("a"), ord("b"), ord("c")], [ord("c"), ord("a"), 0]], "int32")
    task = tasks.from_arrays({"texts": truth, "charset": charset}, 2, "eval.npz")
    # "a a _ b c" decodes to "abc" (repeat merged, blank dropped); "c b a" has one substitution
    outputs = _ctc([[1, 1, 0, 2, 3], [3, 2, 1]], 6, 5)
    assert ["".join(map(chr, t)) for t in task.decode(outputs)] == ["abc", "cba"]
    # errors: 0 + edit("cba", "ca") = 1, over 5 truth characters
    assert task.score(outputs) == pytest.approx(20.0)
    assert task.drop(10.0, 20.0) == 10.0             # CER: higher is worse
    with pytest.raises(InputError, match=r"CTC scores \[N, T, 5\]"):
        task.check_fits((None, None, 6625))


def test_detection_f1_from_a_db_probability_map():
    prob = np.zeros((2, 1, 64, 128), "float32")
    prob[0, 0, 10:20, 10:60] = 0.9           # a shrunk text kernel: unclipped back to about its line
    prob[0, 0, 40:50, 70:120] = 0.9
    prob[1, 0, 30:34, 10:100] = 0.4          # over the threshold, under the box score: no box
    boxes = np.array([[0, 5, 5, 65, 25], [0, 65, 35, 125, 55], [1, 10, 25, 100, 40]], "float32")
    task = tasks.from_arrays({"boxes": boxes}, 2, "eval.npz")
    found = tasks.db_boxes(prob[0, 0])
    assert len(found) == 2 and tasks.iou(found[0], boxes[0, 1:]) > 0.7
    # 2 of 2 found boxes match, 2 of 3 truth boxes found: F1 = 2*2 / (2 + 3)
    assert task.score(prob) == pytest.approx(80.0)
    strict = tasks.from_arrays({"boxes": boxes, "iou": np.float32(0.99)}, 2, "eval.npz")
    assert strict.metric == "box F1 @ IoU 0.99" and strict.score(prob) == 0.0


def test_segmentation_miou_from_scores_and_ids():
    masks = np.array([[[0, 0, 1, 1], [0, 0, 1, 255]]], "int64")
    task = tasks.from_arrays({"masks": masks}, 1, "eval.npz")
    ids = np.array([[[0, 0, 0, 1], [0, 0, 1, 0]]])            # class 0: 4/5, class 1: 2/3 (ignored pixel left out)
    assert task.score(ids) == pytest.approx((4 / 5 + 2 / 3) / 2 * 100)
    scores = np.stack([ids == 0, ids == 1], 1).astype("float32")
    assert task.score(scores) == pytest.approx(task.score(ids))


@pytest.mark.parametrize("arrays, message", [
    ({"labels": np.zeros(3, "int64"), "boxes": np.zeros((1, 5))}, "exactly one kind of ground truth"),
    ({}, "it has none"),
    ({"texts": np.zeros((3, 4), "int32")}, "recognition needs charset"),
    ({"boxes": np.array([[5, 0, 0, 1, 1]], "float32")}, "sample indices must lie in 0..2"),
    ({"masks": np.zeros((3, 4), "int64")}, r"masks must be \[3, H, W\]"),
])
def test_bad_ground_truth_is_one_readable_error(arrays, message):
    with pytest.raises(InputError, match=message):
        tasks.from_arrays(arrays, 3, "eval.npz")


def test_cli_refuses_an_eval_file_with_two_tasks_before_work(wherry, tmp_path, example_model):
    from wherry.convert import example

    x = np.load(example.INPUTS)["x"]
    np.savez(tmp_path / "eval.npz", x=x, labels=np.zeros(len(x), "int64"), masks=np.zeros((len(x), 8, 8), "int64"))
    proc = wherry("convert", example_model, "--eval", tmp_path / "eval.npz", "-o", tmp_path / "out")
    assert proc.returncode == 2 and "exactly one kind of ground truth" in proc.stderr
    assert "Traceback" not in proc.stderr and not list((tmp_path / "out").glob("*/manifest.json"))
