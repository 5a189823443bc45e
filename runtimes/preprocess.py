"""How an image becomes a model input, written down so a device can repeat it exactly.

A :class:`PreprocessSpec` is recorded in a bundle's manifest (``preprocess``) when
calibration or golden data came from image files. The steps, in order:

1. decode to RGB (or grayscale when ``channels == 1``), uint8, HWC
2. resize to ``size`` (height, width) with bilinear interpolation, half-pixel centres,
   computed here in numpy (not by an image library) so every device gets the same numbers
3. reorder channels to ``channel_order`` (RGB or BGR)
4. ``x = (pixel * scale - mean) / std`` per channel, in float32
5. lay out as ``layout`` (NCHW or NHWC), with a leading batch axis

Only numpy is needed to apply a spec to decoded pixels; PIL is imported lazily,
and only to decode image files.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from numpy.typing import NDArray

from .errors import InputError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
LAYOUTS = ("NCHW", "NHWC")
CHANNEL_ORDERS = ("RGB", "BGR")


@dataclass
class PreprocessSpec:
    """Image -> tensor recipe. ``size`` is (height, width) or None to keep the image size."""

    size: Optional[Tuple[int, int]] = None
    mean: List[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    std: List[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    scale: float = 1.0 / 255.0
    layout: str = "NCHW"
    channel_order: str = "RGB"
    channels: int = 3
    dtype: str = "float32"
    input: Optional[str] = None      # the model input it feeds (recorded in the manifest)

    def __post_init__(self) -> None:
        if self.size is not None:
            self.size = (int(self.size[0]), int(self.size[1]))
        self.mean = [float(v) for v in self.mean]
        self.std = [float(v) for v in self.std]
        self.layout = str(self.layout).upper()
        self.channel_order = str(self.channel_order).upper()
        self.validate()

    def validate(self) -> None:
        """Refuse a spec that cannot be applied, with the field that is wrong."""
        problems = []
        if self.layout not in LAYOUTS:
            problems.append(f"layout {self.layout!r} (use {' or '.join(LAYOUTS)})")
        if self.channel_order not in CHANNEL_ORDERS:
            problems.append(f"channel_order {self.channel_order!r} (use {' or '.join(CHANNEL_ORDERS)})")
        if self.channels not in (1, 3):
            problems.append(f"channels {self.channels} (use 1 or 3)")
        for name in ("mean", "std"):
            values = getattr(self, name)
            if len(values) not in (1, self.channels):
                problems.append(f"{name} has {len(values)} values for {self.channels} channel(s)")
        if any(v == 0 for v in self.std):
            problems.append("std contains 0")
        if self.size is not None and min(self.size) <= 0:
            problems.append(f"size {list(self.size)}")
        if problems:
            raise InputError("invalid preprocessing spec: " + "; ".join(problems),
                             "e.g. {\"size\": [224, 224], \"mean\": [0.485, 0.456, 0.406], "
                             "\"std\": [0.229, 0.224, 0.225], \"layout\": \"NCHW\", \"channel_order\": \"RGB\"}")

    # --- serialization (the manifest's ``preprocess`` field) ---------------------------------------
    def to_json(self) -> Dict[str, Any]:
        data = asdict(self)
        data["size"] = list(self.size) if self.size is not None else None
        return data

    @classmethod
    def from_json(cls, data: object) -> "PreprocessSpec":
        """From a dict or a JSON string; unknown keys are refused (a typo would silently change inputs)."""
        if isinstance(data, (str, bytes)):
            try:
                data = json.loads(data)
            except ValueError as exc:
                raise InputError(f"preprocessing spec is not valid JSON: {exc}", "pass a JSON object") from None
            except RecursionError:
                raise InputError("preprocessing spec is nested too deeply to read", "pass a JSON object") from None
        if not isinstance(data, dict):
            raise InputError("preprocessing spec must be a JSON object", "e.g. {\"size\": [224, 224]}")
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise InputError(f"preprocessing spec has unknown field(s) {', '.join(unknown)}",
                             f"known fields: {', '.join(cls.__dataclass_fields__)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise InputError(f"invalid preprocessing spec: {exc}", "check the field types") from None

    @classmethod
    def for_input(cls, shape: Sequence[Optional[int]], **overrides: Any) -> "PreprocessSpec":
        """A spec whose layout, channels and size follow a 4-D model input shape where it is static."""
        if len(shape) != 4:
            raise InputError(f"image preprocessing needs a 4-D image input, the model takes {list(shape)}",
                             "give calibration data as an .npz instead of an image folder")
        nhwc = shape[3] in (1, 3) and shape[1] not in (1, 3)
        c, h, w = (shape[3], shape[1], shape[2]) if nhwc else (shape[1], shape[2], shape[3])
        values: Dict[str, Any] = {"layout": "NHWC" if nhwc else "NCHW", "channels": c if c in (1, 3) else 3,
                                  "size": (h, w) if h and w else None}
        if values["channels"] == 1:
            values.update(mean=[0.0], std=[1.0])
        values.update(overrides)
        return cls(**values)

    # --- application -------------------------------------------------------------------------------
    def apply(self, pixels: NDArray[Any]) -> NDArray[Any]:
        """Decoded pixels (HWC or HW, uint8 or float in 0..255, RGB order) -> one sample with batch axis."""
        img = np.asarray(pixels)
        if img.ndim == 2:
            img = img[:, :, None]
        if img.ndim != 3:
            raise InputError(f"an image must be HxW or HxWxC, got shape {list(img.shape)}", "decode it first")
        img = _to_channels(img.astype(np.float32), self.channels)
        if self.size is not None and img.shape[:2] != tuple(self.size):
            img = resize_bilinear(img, self.size)
        if self.channels == 3 and self.channel_order == "BGR":
            img = img[:, :, ::-1]
        mean = np.asarray(self.mean, np.float32)
        std = np.asarray(self.std, np.float32)
        img = (img * np.float32(self.scale) - mean) / std
        if self.layout == "NCHW":
            img = img.transpose(2, 0, 1)
        return np.ascontiguousarray(img[None], dtype=self.dtype)

    def load(self, path: Union[str, os.PathLike[str]]) -> NDArray[Any]:
        """Decode an image file and apply the spec: one sample with a batch axis."""
        return self.apply(decode_image(path, self.channels))


def _to_channels(img: NDArray[np.float32], channels: int) -> NDArray[np.float32]:
    have = img.shape[2]
    if have == 4:  # RGBA: alpha is not image content
        img, have = img[:, :, :3], 3
    if have == channels:
        return img
    if channels == 1 and have == 3:  # ITU-R 601 luma, as PIL's "L" mode
        return (img @ np.array([0.299, 0.587, 0.114], np.float32))[:, :, None]
    if channels == 3 and have == 1:
        return np.repeat(img, 3, axis=2)
    raise InputError(f"cannot turn a {have}-channel image into {channels} channel(s)", "use RGB or grayscale images")


def resize_bilinear(img: NDArray[np.float32], size: Tuple[int, int]) -> NDArray[np.float32]:
    """Bilinear resize of an HWC float image with half-pixel centres (no antialiasing): pure numpy, so the
    host and a board produce the same input from the same pixels."""
    out_h, out_w = size
    in_h, in_w = img.shape[:2]

    def axis(n_out: int, n_in: int) -> Tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]:
        pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
        pos = np.clip(pos, 0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    y0, y1, wy = axis(out_h, in_h)
    x0, x1, wx = axis(out_w, in_w)
    top = img[y0][:, x0] * (1 - wx)[None, :, None] + img[y0][:, x1] * wx[None, :, None]
    bottom = img[y1][:, x0] * (1 - wx)[None, :, None] + img[y1][:, x1] * wx[None, :, None]
    return (top * (1 - wy)[:, None, None] + bottom * wy[:, None, None]).astype(np.float32)


def decode_image(path: Union[str, os.PathLike[str]], channels: int = 3) -> NDArray[np.uint8]:
    """An image file as uint8 HWC (RGB) or HW1 (grayscale) pixels; needs Pillow."""
    try:
        from PIL import Image
    except ImportError:
        raise InputError("reading image files needs Pillow", "pip install pillow, or pass an .npz") from None
    try:
        with Image.open(path) as opened:
            im = opened.convert("L" if channels == 1 else "RGB")
            pixels = np.asarray(im, dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read image {path}: {exc}", "pass PNG/JPEG/BMP files") from None
    return pixels if pixels.ndim == 3 else pixels[:, :, None]


def image_files(folder: Union[str, os.PathLike[str]]) -> List[str]:
    """Image files in a folder (not recursive), sorted by name so the order is reproducible."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise InputError(f"image folder {folder} does not exist", "pass a folder of images or an .npz")
    files = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise InputError(f"image folder {folder} holds no images ({', '.join(IMAGE_SUFFIXES)})",
                         "put representative images in it, or pass an .npz")
    return files


def load_folder(folder: Union[str, os.PathLike[str]], spec: PreprocessSpec,
                limit: Optional[int] = None) -> NDArray[Any]:
    """Every image of a folder (name order, at most ``limit``) through the spec, stacked on the batch axis."""
    files = image_files(folder)[:limit]
    log.info("preprocessing %d image(s) from %s", len(files), folder)
    return np.concatenate([spec.load(f) for f in files])
