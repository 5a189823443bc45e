"""wherry's one user-level cache: built Paddle Lite runtimes, tool environments, the zoo's results, the
web runtime, Paddle's op registry. Kept outside any checkout, so a fresh clone reuses it."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """$WHERRY_CACHE, else $XDG_CACHE_HOME/wherry, else ~/.cache/wherry."""
    if os.environ.get("WHERRY_CACHE"):
        return Path(os.environ["WHERRY_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "wherry"
