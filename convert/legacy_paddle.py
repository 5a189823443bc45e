"""Paddle 2.6.2, for Paddle 1.x models whose ops the installed Paddle dropped.

Paddle 3 removed many Paddle 1.x LoD kernels (``sequence_unpad``, ``sequence_pad``, ``sequence_reverse``,
...): a Senta-style model that Paddle Lite still builds cannot be run by Paddle 3 (``PaddleOpMissing``).
Paddle 2.6.2, the last release that runs them, lives in a cached tool environment of its own
(``tool_env``: a venv, made once).
"""
from __future__ import annotations

from wherry.convert import tool_env

VERSION = "2.6.2"
ENV = tool_env.ToolEnv("paddle-legacy", (f"paddlepaddle=={VERSION}", "numpy==1.26.4", "protobuf==3.20.2",
                                         "opt-einsum==3.3.0"), label=f"Paddle {VERSION}")
