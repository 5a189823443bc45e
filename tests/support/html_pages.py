"""Reading a rendered HTML report: a real headless Chromium screenshot and the colours of its cells."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine: not verifiable here")

PASS_GREEN, FAIL_RED = (0xD9, 0xF2, 0xDC), (0xFB, 0xD9, 0xD7)   # the verdict cells' backgrounds (report CSS)


def screenshot(page: Path, out: Path, height: int = 1600) -> np.ndarray:
    """The page in headless Chromium, 1100 px wide and ``height`` px tall (a longer page needs more)."""
    from PIL import Image

    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--window-size=1100,{height}", f"--screenshot={out}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    return np.asarray(Image.open(out).convert("RGB"))


def pixels_near(image: np.ndarray, rgb, tol: int = 6) -> int:
    return int((np.abs(image.astype(int) - np.array(rgb)).max(axis=-1) <= tol).sum())


def assert_self_contained(text: str) -> None:
    assert "<script" not in text.lower()
    assert not re.search(r'(src|href)="(https?:)?//', text), "the page must not load anything from a network"
