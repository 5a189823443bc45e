"""The image preprocessing spec: a recipe a device can repeat, checked against real decoding (Pillow)."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from wherry.runtimes.errors import InputError
from wherry.runtimes.preprocess import PreprocessSpec, decode_image, image_files, load_folder, resize_bilinear


def test_json_round_trip_keeps_every_field():
    spec = PreprocessSpec(size=(224, 160), mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225],
                          layout="nhwc", channel_order="bgr")
    data = json.loads(json.dumps(spec.to_json()))  # as stored in manifest.json
    again = PreprocessSpec.from_json(data)
    assert again == spec
    assert again.layout == "NHWC" and again.channel_order == "BGR" and again.size == (224, 160)
    assert PreprocessSpec.from_json(json.dumps(data)) == spec  # JSON text works too


@pytest.mark.parametrize("data, needle", [
    ({"size": [8, 8], "meen": [0.5]}, "unknown field(s) meen"),
    ({"layout": "CHW"}, "layout 'CHW'"),
    ({"channel_order": "RGBA"}, "channel_order"),
    ({"std": [0.0, 1.0, 1.0]}, "std contains 0"),
    ({"mean": [0.1, 0.2]}, "mean has 2 values"),
    ("{not json", "not valid JSON"),
    ("[" * 5000 + "]" * 5000, "nested too deeply"),   # a RecursionError before (issue 27, finding 11)
])
def test_bad_specs_are_refused_with_the_field_named(data, needle):
    with pytest.raises(InputError) as err:
        PreprocessSpec.from_json(data)
    assert needle in str(err.value)


def test_normalization_channel_order_and_layout():
    pixels = np.zeros((2, 3, 3), np.uint8)
    pixels[..., 0], pixels[..., 1], pixels[..., 2] = 255, 51, 0  # R, G, B
    spec = PreprocessSpec(mean=[0.5, 0.5, 0.5], std=[0.5, 0.25, 0.5])
    nchw = spec.apply(pixels)
    assert nchw.shape == (1, 3, 2, 3) and nchw.dtype == np.float32
    np.testing.assert_allclose(nchw[0, :, 0, 0], [1.0, (0.2 - 0.5) / 0.25, -1.0], rtol=1e-6)
    bgr = PreprocessSpec(mean=[0.5] * 3, std=[0.5, 0.25, 0.5], channel_order="BGR", layout="NHWC").apply(pixels)
    assert bgr.shape == (1, 2, 3, 3)
    np.testing.assert_allclose(bgr[0, 0, 0], [-1.0, (0.2 - 0.5) / 0.25, 1.0], rtol=1e-6)


def test_grayscale_uses_luma_and_keeps_one_channel():
    pixels = np.full((4, 4, 3), [200, 100, 50], np.uint8)
    out = PreprocessSpec(channels=1, mean=[0.0], std=[1.0], scale=1.0).apply(pixels)
    assert out.shape == (1, 1, 4, 4)
    np.testing.assert_allclose(out[0, 0, 0, 0], 0.299 * 200 + 0.587 * 100 + 0.114 * 50, rtol=1e-6)


def test_resize_uses_half_pixel_centres():
    ramp = np.arange(4, dtype=np.float32).reshape(1, 4, 1).repeat(2, 0)
    np.testing.assert_allclose(resize_bilinear(ramp, (2, 2))[0, :, 0], [0.5, 2.5])
    const = np.full((5, 7, 3), 42.0, np.float32)
    np.testing.assert_allclose(resize_bilinear(const, (11, 3)), 42.0)


def test_upscale_matches_pillow_bilinear():
    """For upscaling Pillow's bilinear filter is the same half-pixel interpolation: outputs agree to rounding."""
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
    ours = resize_bilinear(pixels.astype(np.float32), (18, 15))
    theirs = np.asarray(Image.fromarray(pixels).resize((15, 18), Image.BILINEAR), np.float32)
    assert np.abs(ours - theirs).max() <= 1.0


def test_folder_is_decoded_in_name_order(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (10, 12, 3), dtype=np.uint8) for _ in range(3)]
    for i, img in zip((2, 0, 1), images):  # written out of order
        Image.fromarray(img).save(tmp_path / f"img{i}.png")
    (tmp_path / "notes.txt").write_text("not an image")
    assert [p.rsplit("/", 1)[1] for p in image_files(tmp_path)] == ["img0.png", "img1.png", "img2.png"]
    np.testing.assert_array_equal(decode_image(tmp_path / "img2.png"), images[0])
    batch = load_folder(tmp_path, PreprocessSpec(size=(10, 12), scale=1.0))
    assert batch.shape == (3, 3, 10, 12)
    np.testing.assert_array_equal(batch[2], images[0].transpose(2, 0, 1).astype(np.float32))


def test_empty_or_missing_folder_and_bad_image(tmp_path):
    with pytest.raises(InputError, match="holds no images"):
        image_files(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        image_files(tmp_path / "nope")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot read image"):
        decode_image(tmp_path / "broken.png")


def test_spec_follows_the_model_input():
    assert PreprocessSpec.for_input((None, 3, 224, 224)).to_json()["size"] == [224, 224]
    nhwc = PreprocessSpec.for_input((1, 32, 48, 3))
    assert nhwc.layout == "NHWC" and nhwc.size == (32, 48)
    gray = PreprocessSpec.for_input((None, 1, 8, 8))
    assert gray.channels == 1 and gray.mean == [0.0]
    assert PreprocessSpec.for_input((None, 3, None, None)).size is None
    with pytest.raises(InputError, match="4-D image input"):
        PreprocessSpec.for_input((None, 10))


def test_runtimes_preprocess_needs_only_numpy(tmp_path):
    """A board applies the spec with numpy alone: importing it must not pull in Pillow or anything else,
    and it runs on the oldest Python the board side supports (3.9) when that environment exists."""
    from test_runtime_minimal_env import _python39, in_env, make_venv

    code = ("import sys, json; import wherry.runtimes.preprocess as p; import numpy as np; "
            "spec = p.PreprocessSpec.from_json(json.loads(sys.argv[1])); "
            "out = spec.apply(np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)); "
            "bad = [m for m in ('PIL', 'paddle', 'onnxruntime', 'wherry.convert') if m in sys.modules]; "
            "assert not bad, bad; print(json.dumps(out.ravel().tolist()))")
    spec = PreprocessSpec(size=(4, 4), mean=[0.5] * 3, std=[0.2] * 3, channel_order="BGR")
    expected = spec.apply(np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)).ravel()
    pythons = [sys.executable]
    base = _python39()
    if base is not None:
        pythons.append(str(make_venv("runtime-min-py39", ["numpy", "onnxruntime"], base)))
    for python in pythons:
        proc = in_env(python, "-c", code, json.dumps(spec.to_json()), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        np.testing.assert_allclose(json.loads(proc.stdout), expected, rtol=1e-6)
