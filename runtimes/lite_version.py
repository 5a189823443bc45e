"""Does this device's Paddle Lite runtime match the paddle_lite_opt that wrote a .nb?

A .nb is read by the runtime of the Lite release whose opt wrote it; another release may refuse
the file ("model load failed") or, worse, load it and compute differently. The manifest records
the opt version (the PyPI version, e.g. ``2.13rc0``); runtimes report a tag (``v2.13-rc``) or a
PyPI version. Both are brought to one spelling before they are compared.
"""
from __future__ import annotations

import re
from typing import Optional

_PRE = re.compile(r"^(\d+(?:\.\d+)*)[-.]?(rc|a|b|beta|alpha)(\d*)$")


def normalize(version: str) -> str:
    """'v2.13-rc' -> '2.13rc0', '2.13rc0' -> '2.13rc0', 'v2.12.0' -> '2.12', '2.12' -> '2.12'."""
    text = version.strip().lower().split("+")[0].split(" ")[0]
    text = text[1:] if text.startswith("v") else text
    match = _PRE.match(text)
    if match:
        release, tag, number = match.groups()
        tag = {"alpha": "a", "beta": "b"}.get(tag, tag)
        return f"{_release(release)}{tag}{number or 0}"
    return _release(text)


def _release(text: str) -> str:
    parts = text.split(".")
    while len(parts) > 2 and parts[-1] == "0":  # 2.12.0 is 2.12
        parts.pop()
    return ".".join(parts)


def mismatch(opt_version: Optional[str], runtime_version: Optional[str], runtime_commit: Optional[str] = None,
             artifact: str = "this .nb") -> Optional[str]:
    """A sentence explaining a version mismatch, or None when they match or one is unknown."""
    if not opt_version or not runtime_version or runtime_version == "unknown":
        return None
    if normalize(opt_version) == normalize(runtime_version):
        return None
    runtime = f"{runtime_version}" + (f" (commit {runtime_commit[:12]})" if runtime_commit else "")
    return (f"Paddle Lite version mismatch: {artifact} was written by paddle_lite_opt {opt_version}, this device's "
            f"Paddle Lite runtime is {runtime}. A .nb is only sure to load and compute the same on the runtime of "
            f"the release that wrote it: convert with the opt of the device's release, or give the device the "
            f"runtime of the opt's release (wherry targets build-lite builds v2.13-rc, the release of "
            f"paddle_lite_opt 2.13rc0)")
