"""The golden run under Paddle 2.6.2, for Paddle 1.x models whose ops the installed Paddle dropped.

Paddle 3 removed many Paddle 1.x LoD kernels (``sequence_unpad``, ``sequence_pad``, ``sequence_reverse``,
...): a Senta-style model that Paddle Lite still builds cannot be run by Paddle 3 for its reference
outputs (``PaddleOpMissing``). The reference then comes from Paddle 2.6.2, the last release that runs
them, in a cached tool environment of its own (``tool_env``: a venv, made once): the same inputs go as an
.npz to a child of that venv's interpreter, which opens the ORIGINAL model with ``wherry.runtimes``' Paddle
backend and writes its outputs back as an .npz. The manifest records which Paddle produced the reference
(``golden.paddle``).
"""
from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from wherry.convert import tool_env
from wherry.runtimes.errors import PaddleOpMissing, WherryError

log = logging.getLogger(__name__)

VERSION = "2.6.2"
ENV = tool_env.ToolEnv("paddle-legacy", (f"paddlepaddle=={VERSION}", "numpy==1.26.4", "protobuf==3.20.2",
                                         "opt-einsum==3.3.0"), label=f"Paddle {VERSION}")


def reference_outputs(model_path: Path, feeds: dict,
                      missing: PaddleOpMissing) -> Tuple[Dict[str, np.ndarray], float, str]:
    """(outputs, seconds of the run itself, Paddle version) of the original model under Paddle 2.6.2.

    ``missing`` is the installed Paddle's refusal; when the environment cannot be made, the error is one
    line naming the op and what to do."""
    log.warning("Paddle %s has no kernel for op %s: the golden outputs come from Paddle %s instead "
                "(a cached tool environment, run as a child)", missing.paddle_version, missing.op, VERSION)
    try:
        tool_env.ensure(ENV)
    except tool_env.ToolUnavailable as exc:
        reason = "; ".join(ln.strip() for ln in exc.message.splitlines() if ln.strip())   # one line
        raise PaddleOpMissing.missing(
            missing.op, missing.paddle_version,
            f"its reference must come from Paddle {VERSION}, whose environment cannot be made here "
            f"({reason.rstrip('.')}); let pip reach PyPI once (the environment is cached in "
            f"{tool_env.tools_dir()}), or point WHERRY_TOOLS_DIR at a cache that has it") from None
    with tempfile.TemporaryDirectory(prefix="wherry-golden-") as tmp:
        inputs, outputs = Path(tmp) / "inputs.npz", Path(tmp) / "outputs.npz"
        np.savez(inputs, **feeds)
        try:
            value, _, _ = tool_env.run(ENV, "wherry.convert.legacy_paddle:_child_run",
                                       {"model": str(model_path), "inputs": str(inputs), "outputs": str(outputs)},
                                       tool=f"Paddle {VERSION}", what="computing golden outputs")
        except WherryError as exc:   # a crash here is the model on these inputs, not a tool to report
            exc.hint = ("Paddle 1.x sequence models crash on inputs they never get (a sequence length of 0, an id "
                        "beyond the vocabulary): pass real inputs with --inputs (lengths included)")
            raise
        with np.load(outputs, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}, float(value["seconds"]), str(value["paddle"])


def _child_run(model: str, inputs: str, outputs: str) -> dict:
    """In the Paddle 2.6.2 venv: the original model's outputs on the feeds in ``inputs``, saved to ``outputs``."""
    from wherry import runtimes

    with np.load(inputs, allow_pickle=False) as data:
        feeds = {name: data[name] for name in data.files}
    with runtimes.open(model, backend="paddle", isolate=False) as session:
        start = time.perf_counter()
        result = session.run(feeds)
        seconds = time.perf_counter() - start
        version = session.version
    np.savez(outputs, **result)
    return {"seconds": seconds, "paddle": version}
