"""Task metrics for ``--eval``: what an artifact's first output is worth on labelled data, beyond tensor distance.

An eval file holds the model's inputs (first axis = samples) and one kind of ground truth, which names
the task (every array numeric: .npz files are read without pickles, so text travels as code points):

===============  =====================================================  =====================================
task             ground truth in the .npz                               metric (of the model's first output)
===============  =====================================================  =====================================
classification   ``labels`` [N] class indices                           top-1 accuracy %, scores [N, classes]
recognition      ``texts`` [N, L] Unicode code points, 0-padded, and    CER % (character error rate: edit
                 ``charset`` [C] code points: class k+1 is charset[k],  distance / truth length, summed) of the
                 class 0 the CTC blank                                  greedy CTC decoding of [N, T, C+1]
detection        ``boxes`` [K, 5] (sample, x1, y1, x2, y2) in input     box F1 % at IoU >= ``iou`` (default
                 pixels; optional ``iou`` scalar                        0.5) of boxes read from a text
                                                                        probability map [N, 1, H, W] (DB)
segmentation     ``masks`` [N, H, W] class ids (255 ignored)            mIoU % over the classes present, of
                                                                        scores [N, C, H, W] or ids [N, H, W]
===============  =====================================================  =====================================

DB post-processing here is the axis-aligned reading of PaddleOCR's defaults (threshold 0.3, box score
0.6, unclip ratio 1.5): enough to compare two artifacts of one detector on horizontal text, not a
replacement for the application's own polygon post-processing.
"""
from __future__ import annotations

from collections import deque
from typing import Dict, List, Optional, Tuple

import numpy as np

from wherry.runtimes.errors import InputError

TRUTH_KEYS = ("labels", "texts", "boxes", "masks")
DB_THRESHOLD, DB_BOX_SCORE, DB_UNCLIP, DB_MIN_SIDE = 0.3, 0.6, 1.5, 3
IGNORE_CLASS = 255


class Task:
    """One kind of ground truth and its metric; ``score(outputs)`` over every eval sample at once."""

    kind = "classification"
    metric = "top-1 accuracy"
    higher_is_better = True

    def __init__(self, truth: Dict[str, np.ndarray], count: int):
        self.truth, self.count = truth, count

    def check_fits(self, output_shape: Optional[tuple]) -> None:
        """Refuse, before work starts, a model whose first output cannot be scored this way."""

    def score(self, outputs: np.ndarray) -> float:
        raise NotImplementedError

    def drop(self, reference: float, score: float) -> float:
        """How much worse ``score`` is than ``reference`` (positive = worse), in the metric's points."""
        return reference - score if self.higher_is_better else score - reference

    def predictions(self, outputs: np.ndarray) -> Optional[np.ndarray]:
        """Per-sample decisions two artifacts can agree on (classification only)."""
        return None

    def describe(self) -> str:
        return f"{self.metric} ({self.kind}, {self.count} samples)"


class Classification(Task):
    def check_fits(self, output_shape):
        labels = self.truth["labels"]
        if output_shape is None or len(output_shape) != 2:
            raise InputError(f"--eval with labels needs a model whose first output is class scores [N, classes]; it "
                             f"is {list(output_shape) if output_shape is not None else 'unknown'}",
                             "give recognition (texts + charset), detection (boxes) or segmentation (masks) ground "
                             "truth instead (docs/quantization.md)")
        classes = output_shape[1]
        if classes is not None and (labels.min() < 0 or labels.max() >= classes):
            raise InputError(f"labels range {labels.min()}..{labels.max()} does not fit {classes} classes",
                             "labels must be class indices of the model's output")

    def score(self, outputs):
        return float((self.predictions(outputs) == self.truth["labels"]).mean() * 100.0)

    def predictions(self, outputs):
        return outputs.reshape(self.count, -1).argmax(1)


class Recognition(Task):
    kind, metric, higher_is_better = "recognition", "CER", False

    def check_fits(self, output_shape):
        classes = len(self.truth["charset"]) + 1
        if output_shape is None or len(output_shape) != 3 or output_shape[2] not in (None, classes):
            raise InputError(f"--eval with texts needs a first output of CTC scores [N, T, {classes}] (blank + "
                             f"{classes - 1} characters of charset); it is "
                             f"{list(output_shape) if output_shape is not None else 'unknown'}",
                             "give the character set the model was trained with, in class order")

    def decode(self, outputs: np.ndarray) -> List[List[int]]:
        """Greedy CTC: best class per time step, repeats merged, blanks dropped; code points."""
        charset = self.truth["charset"]
        best = outputs.reshape(self.count, outputs.shape[1], -1).argmax(2)
        texts = []
        for row in best:
            keep = np.concatenate([[True], row[1:] != row[:-1]]) & (row != 0)
            texts.append([int(charset[k - 1]) for k in row[keep]])
        return texts

    def score(self, outputs):
        truths = [[int(c) for c in row if c] for row in self.truth["texts"]]
        errors = sum(edit_distance(p, t) for p, t in zip(self.decode(outputs), truths))
        return errors / max(1, sum(len(t) for t in truths)) * 100.0


class Detection(Task):
    kind, higher_is_better = "detection", True

    def __init__(self, truth, count):
        super().__init__(truth, count)
        self.iou = float(truth["iou"]) if "iou" in truth else 0.5
        self.metric = f"box F1 @ IoU {self.iou:g}"

    def check_fits(self, output_shape):
        if output_shape is None or len(output_shape) not in (3, 4) or (len(output_shape) == 4 and
                                                                       output_shape[1] not in (None, 1)):
            raise InputError(f"--eval with boxes needs a first output that is a text probability map [N, 1, H, W] "
                             f"(a DB text detector); it is "
                             f"{list(output_shape) if output_shape is not None else 'unknown'}",
                             "evaluate this detector with its application's own post-processing")

    def score(self, outputs):
        maps = outputs.reshape(self.count, outputs.shape[-2], outputs.shape[-1])
        boxes = self.truth["boxes"]
        matched = predicted = 0
        for i, prob in enumerate(maps):
            found = db_boxes(prob)
            predicted += len(found)
            matched += match_boxes(found, boxes[boxes[:, 0] == i, 1:], self.iou)
        truth = len(boxes)
        return 2.0 * matched / (predicted + truth) * 100.0 if predicted + truth else 100.0


class Segmentation(Task):
    kind, metric = "segmentation", "mIoU"

    def check_fits(self, output_shape):
        masks = self.truth["masks"]
        if output_shape is None or len(output_shape) not in (3, 4):
            raise InputError(f"--eval with masks needs a first output [N, C, H, W] (scores) or [N, H, W] (class "
                             f"ids); it is {list(output_shape) if output_shape is not None else 'unknown'}",
                             "evaluate a segmentation model")
        if tuple(d for d in output_shape[-2:] if d is not None) not in ((), masks.shape[1:]) and \
                None not in output_shape[-2:]:
            raise InputError(f"masks are {list(masks.shape[1:])} per sample, the model's output "
                             f"{list(output_shape[-2:])}", "give masks at the model's output resolution")

    def score(self, outputs):
        masks = self.truth["masks"]
        if outputs.dtype.kind == "f" and outputs.ndim == 4 and outputs.shape[1] > 1:
            predicted = outputs.argmax(1)
        else:
            predicted = outputs.reshape(masks.shape)
        valid = masks != IGNORE_CLASS
        truth, predicted = masks[valid].astype("int64"), predicted[valid].astype("int64")
        ious = []
        for c in np.union1d(np.unique(truth), np.unique(predicted)):
            inter = np.count_nonzero((truth == c) & (predicted == c))
            union = np.count_nonzero((truth == c) | (predicted == c))
            ious.append(inter / union)
        return float(np.mean(ious) * 100.0) if ious else 100.0


TASKS = {"labels": Classification, "texts": Recognition, "boxes": Detection, "masks": Segmentation}


def from_arrays(arrays: Dict[str, np.ndarray], count: int, label: str) -> Task:
    """The task an eval file's ground truth names (the arrays left after the inputs); checked here."""
    present = [k for k in TRUTH_KEYS if k in arrays]
    if len(present) != 1:
        raise InputError(f"evaluation data {label} must hold exactly one kind of ground truth "
                         f"({', '.join(TRUTH_KEYS)}); it has {', '.join(present) or 'none'}",
                         "classification: labels; recognition: texts + charset; detection: boxes; "
                         "segmentation: masks (docs/quantization.md)")
    key = present[0]
    truth = {k: arrays[k] for k in (key, "charset", "iou") if k in arrays}
    data = truth[key]
    if key == "labels":
        _need(data.ndim == 1 and len(data) == count and data.dtype.kind in "iu", label,
              f"labels must be {count} integer class indices (got shape {list(data.shape)}, dtype {data.dtype})")
        truth["labels"] = data.astype("int64")
    elif key == "texts":
        _need(data.ndim == 2 and len(data) == count and data.dtype.kind in "iu", label,
              f"texts must be [{count}, max length] integer code points, 0-padded (got shape {list(data.shape)}, "
              f"dtype {data.dtype})")
        charset = arrays.get("charset")
        _need(charset is not None and charset.ndim == 1 and charset.dtype.kind in "iu" and len(charset) > 0, label,
              "recognition needs charset: the model's characters as code points, class k+1 = charset[k]")
    elif key == "boxes":
        _need(data.ndim == 2 and data.shape[1] == 5 and data.dtype.kind in "fiu", label,
              f"boxes must be [K, 5] rows (sample, x1, y1, x2, y2) (got shape {list(data.shape)})")
        _need(len(data) == 0 or (data[:, 0].min() >= 0 and data[:, 0].max() < count), label,
              f"box sample indices must lie in 0..{count - 1}")
        truth["boxes"] = data.astype("float64")
    else:
        _need(data.ndim == 3 and len(data) == count and data.dtype.kind in "iu", label,
              f"masks must be [{count}, H, W] integer class ids (got shape {list(data.shape)}, dtype {data.dtype})")
    return TASKS[key](truth, count)


def _need(ok: bool, label: str, what: str) -> None:
    if not ok:
        raise InputError(f"evaluation data {label}: {what}", "see docs/quantization.md, 'Task metrics'")


def edit_distance(a: List[int], b: List[int]) -> int:
    """Levenshtein distance (insertions, deletions, substitutions each cost 1)."""
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def db_boxes(prob: np.ndarray) -> List[Tuple[float, float, float, float]]:
    """Axis-aligned text boxes from a DB probability map: regions over the threshold (4-connected), kept
    when their mean probability reaches the box score, grown back by the unclip ratio (DB trains on
    shrunk text kernels: offset = area * ratio / perimeter)."""
    mask = prob > DB_THRESHOLD
    seen = np.zeros_like(mask)
    h, w = mask.shape
    boxes = []
    for y0, x0 in zip(*np.nonzero(mask)):
        if seen[y0, x0]:
            continue
        seen[y0, x0] = True
        queue, ys, xs = deque([(y0, x0)]), [], []
        while queue:
            y, x = queue.popleft()
            ys.append(y)
            xs.append(x)
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    queue.append((ny, nx))
        x1, x2, y1, y2 = min(xs), max(xs) + 1, min(ys), max(ys) + 1
        if min(x2 - x1, y2 - y1) < DB_MIN_SIDE or prob[ys, xs].mean() < DB_BOX_SCORE:
            continue
        offset = (x2 - x1) * (y2 - y1) * DB_UNCLIP / (2.0 * ((x2 - x1) + (y2 - y1)))
        boxes.append((max(0.0, x1 - offset), max(0.0, y1 - offset), min(float(w), x2 + offset),
                      min(float(h), y2 + offset)))
    return boxes


def iou(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_boxes(found, truth: np.ndarray, threshold: float) -> int:
    """Greedy one-to-one matches at IoU >= threshold, best pairs first."""
    pairs = sorted(((iou(f, t), i, j) for i, f in enumerate(found) for j, t in enumerate(truth)), reverse=True)
    used_f, used_t, matched = set(), set(), 0
    for value, i, j in pairs:
        if value < threshold:
            break
        if i not in used_f and j not in used_t:
            used_f.add(i)
            used_t.add(j)
            matched += 1
    return matched
