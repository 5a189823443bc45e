"""Where the tests find the checkout and keep their cache.

The cache lives in $WHERRY_CACHE or <repo>/.cache and is keyed by the Paddle version, so a rerun
converts but does not re-export."""
from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("WHERRY_CACHE", REPO / ".cache"))
PADDLE_VERSION = metadata.version("paddlepaddle")
SUPPORT = REPO / "tests" / "support"   # the export scripts and model zoos run as child processes
