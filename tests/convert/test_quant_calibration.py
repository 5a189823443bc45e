"""Calibration data loading: npz and image folders, refused early and clearly when wrong."""
from __future__ import annotations

import numpy as np
import pytest

from wherry.convert.quantize import load_calibration
from wherry.convert.quantize.calibration import MAX_CALIB_SAMPLES, MIN_CALIB_SAMPLES
from wherry.runtimes.errors import InputError
from wherry.runtimes.preprocess import PreprocessSpec
from wherry.runtimes.specs import TensorSpec

GRAY = [TensorSpec("x", "float32", (None, 1, 8, 8))]
RGB = [TensorSpec("image", "float32", (None, 3, 16, 16))]


def _pngs(folder, images, mode):
    from PIL import Image

    folder.mkdir(exist_ok=True)
    for i, img in enumerate(images):
        Image.fromarray(img, mode=mode).save(folder / f"{i:03d}.png")
    return folder


def test_image_folder_matches_the_same_pixels_as_npz(tmp_path):
    from sklearn.datasets import load_digits

    pixels = np.round(load_digits().images[:20] / 16.0 * 255).astype(np.uint8)
    calib = load_calibration(_pngs(tmp_path / "d", pixels, "L"), GRAY)
    assert calib["x"].shape == (20, 1, 8, 8) and calib["x"].dtype == np.float32
    np.testing.assert_allclose(calib["x"][:, 0], pixels / 255.0, atol=1e-6)


def test_rgb_folder_is_resized_and_normalized_by_the_given_spec(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (MIN_CALIB_SAMPLES, 32, 24, 3), dtype=np.uint8)
    spec = PreprocessSpec(size=(16, 16), mean=[0.5] * 3, std=[0.25] * 3, channel_order="BGR")
    calib = load_calibration(_pngs(tmp_path / "rgb", images, "RGB"), RGB, preprocess=spec.to_json())
    assert calib["image"].shape == (MIN_CALIB_SAMPLES, 3, 16, 16)
    np.testing.assert_allclose(calib["image"][0], spec.apply(images[0])[0], atol=1e-6)
    assert calib["image"].min() < -1.5 and calib["image"].max() > 1.5  # (0..1 - 0.5) / 0.25 spans -2..2


def test_manifest_record_round_trips_for_a_device(tmp_path):
    from wherry.convert.quantize.calibration import preprocess_record

    folder = _pngs(tmp_path / "d", np.zeros((MIN_CALIB_SAMPLES, 8, 8), np.uint8), "L")
    record = preprocess_record(folder, GRAY)
    spec = PreprocessSpec.from_json(record)  # what a board does with manifest["preprocess"]
    assert spec.input == "x" and spec.channels == 1 and spec.size == (8, 8)
    assert preprocess_record(tmp_path / "c.npz", GRAY) is None


def test_fixed_batch_of_one_is_fed_sample_by_sample(tmp_path):
    np.savez(tmp_path / "c.npz", x=np.ones((10, 1, 8, 8), "float32"))
    calib = load_calibration(tmp_path / "c.npz", [TensorSpec("x", "float32", (1, 1, 8, 8))])
    assert calib["x"].shape == (10, 1, 8, 8)


def test_npz_is_capped_and_cast(tmp_path):
    np.savez(tmp_path / "c.npz", x=np.ones((MAX_CALIB_SAMPLES + 5, 1, 8, 8), "float64"))
    calib = load_calibration(tmp_path / "c.npz", GRAY)
    assert calib["x"].shape[0] == MAX_CALIB_SAMPLES and calib["x"].dtype == np.float32


@pytest.mark.parametrize("case, needle", [
    ("empty", "holds no images"),
    ("few", f"int8 needs at least {MIN_CALIB_SAMPLES}"),
    ("two_inputs", "an image folder can feed one input"),
    ("not_image_input", "4-D image input"),
    ("int_npz", "has dtype int64, the model takes float32"),
    ("mismatched_counts", "different sample counts"),
    ("fixed_batch", "fixed batch of 4"),
])
def test_bad_calibration_is_refused(tmp_path, case, needle):
    specs = GRAY
    if case == "empty":
        path = tmp_path / "empty"
        path.mkdir()
    elif case in ("few", "two_inputs", "not_image_input"):
        path = _pngs(tmp_path / "few", np.zeros((3 if case == "few" else 10, 8, 8), np.uint8), "L")
        if case == "two_inputs":
            specs = GRAY + [TensorSpec("scale", "float32", (None, 2))]
        if case == "not_image_input":
            specs = [TensorSpec("x", "float32", (None, 64))]
    elif case == "int_npz":
        path = tmp_path / "c.npz"
        np.savez(path, x=np.zeros((16, 1, 8, 8), "int64"))
    elif case == "fixed_batch":
        path = tmp_path / "c.npz"
        specs = [TensorSpec("x", "float32", (4, 1, 8, 8))]
        np.savez(path, x=np.zeros((16, 1, 8, 8), "float32"))
    else:
        path = tmp_path / "c.npz"
        specs = GRAY + [TensorSpec("y", "float32", (None, 2))]
        np.savez(path, x=np.zeros((16, 1, 8, 8), "float32"), y=np.zeros((12, 2), "float32"))
    with pytest.raises(InputError) as err:
        load_calibration(path, specs)
    assert needle in str(err.value)


@pytest.mark.parametrize("total, held_out, calibrated", [
    (300, True, MAX_CALIB_SAMPLES),   # samples calibration does not use: the last 8
    (128, True, 120),                 # enough to hold 8 out
    (20, False, 20),                  # too few: the first 8, calibrated on as well, and said so
])
def test_golden_inputs_from_calibration_data(total, held_out, calibrated):
    from wherry.convert.golden import GOLDEN_FROM_CALIB, from_calibration

    samples = {"x": np.arange(total, dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 8, 8), np.float32)}
    golden, calib, text = from_calibration(samples, GRAY, "calib.npz", MAX_CALIB_SAMPLES)
    ids = golden["x"][:, 0, 0, 0].astype(int).tolist()
    used = set(calib["x"][:, 0, 0, 0].astype(int).tolist())
    assert len(ids) == GOLDEN_FROM_CALIB and len(used) == calibrated
    if held_out:
        assert ids == list(range(total - 8, total)) and not used & set(ids)
        assert "calib.npz" in text and ("held out" in text or "does not use" in text)
    else:
        assert ids == list(range(8)) and set(ids) <= used and "also used for calibration" in text


def test_golden_inputs_from_calibration_for_a_fixed_batch_of_one():
    from wherry.convert.golden import from_calibration

    samples = {"x": np.zeros((64, 1, 8, 8), np.float32)}
    golden, calib, text = from_calibration(samples, [TensorSpec("x", "float32", (1, 1, 8, 8))], "c.npz", 256)
    assert golden["x"].shape == (1, 1, 8, 8) and len(calib["x"]) == 63 and text.startswith("1 sample(s) held out")


def test_golden_inputs_outside_the_calibration_range_are_named():
    from wherry.convert.golden import outside_calibration

    calib = {"x": np.linspace(0, 1, 64 * 8, dtype=np.float32).reshape(8, 1, 8, 8)}
    inside = {"x": np.full((1, 1, 8, 8), 0.5, np.float32)}
    noise = {"x": np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32)}
    assert outside_calibration(inside, calib) == []
    found = outside_calibration(noise, calib)
    assert len(found) == 1 and found[0].startswith("x: golden -") and "calibration 0..1" in found[0]
