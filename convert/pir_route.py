"""The route for PIR programs the PIR -> legacy translator cannot carry: ONNX straight from PIR.

The pipeline asks ``to_legacy_or_pir`` for its legacy program; for an untranslatable PIR program
it gets an ``UntranslatedPir`` (no legacy files), records the ``.nb`` as not built (Paddle Lite reads
only legacy programs; ``untranslated_error`` names the ops) and converts ONNX with ``export_onnx``.

paddle2onnx 2.x reads PIR ``model.json`` natively; 1.3.1 (wherry's pinned converter) reads only
legacy programs. 2.x cannot replace 1.3.1: it breaks some real legacy models, and both are the
same distribution, so they cannot share an environment. wherry therefore installs 2.x on first
use (``pip install --no-deps --target``) into a user-level cache (``tool_env``: the one cache of tool
environments) — ``$WHERRY_TOOLS_DIR`` or the
``tools`` folder of wherry's user cache (``$WHERRY_CACHE``, else ``$XDG_CACHE_HOME/wherry``, default
``~/.cache/wherry``) — and imports it only in the
child process that converts, with that folder first on ``sys.path``. Its ``optimize_tool`` is
"None": the default optimizer pip-installs packages at run time.

This route is taken only for PIR sources whose translation failed (the ops are named in the
bundle report), and its ONNX is checked like any other artifact: ONNX checker, an ONNX Runtime
load here, then golden parity in the bundle check.
"""
from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

from dataclasses import dataclass, field

from wherry.convert import child
from wherry.convert.tool_env import tools_dir
from wherry.convert.normalize import LegacyModel, to_legacy
from wherry.convert.onnx_export import OnnxResult
from wherry.runtimes.errors import WherryError

log = logging.getLogger(__name__)

VERSION = "2.1.0"
TOOL = f"paddle2onnx {VERSION} (PIR)"
TRANSLATOR = "wherry PIR translator"


@dataclass
class UntranslatedPir(LegacyModel):
    """A PIR source without a legacy program: ``model_file`` / ``params_file`` are None."""
    op_names: List[str] = field(default_factory=list)


def to_legacy_or_pir(info, work_dir: Path, formats) -> LegacyModel:
    """The legacy program of ``info``, or for an untranslatable PIR program an ``UntranslatedPir`` when an
    ONNX artifact can still be made from the PIR program itself."""
    from wherry.convert.pir import UntranslatableOps

    try:
        return to_legacy(info, work_dir)
    except UntranslatableOps as exc:
        if info.format != "pir" or (formats is not None and "onnx" not in formats):
            raise
        ops = ", ".join(exc.op_names)
        log.warning("PIR ops without a legacy form: %s; no .nb, ONNX straight from the PIR program", ops)
        note = (f"PIR ops without a legacy form in wherry's translator: {ops}. ONNX converted straight from the "
                f"PIR program by {TOOL}; no .nb (Paddle Lite reads only legacy programs)")
        return UntranslatedPir(None, None, translated=False, notes=[note], op_names=list(exc.op_names))


def untranslated_error(legacy: "UntranslatedPir", what: str) -> WherryError:
    return WherryError(f"cannot build {what}: PIR ops {', '.join(legacy.op_names)} have no legacy form in wherry's "
                       "translator, and Paddle Lite reads only legacy programs",
                       "ask for the ONNX artifact only (--format onnx), or export the model in the legacy format "
                       "(FLAGS_enable_pir_api=0)")


def ensure_installed() -> Path:
    """The folder holding paddle2onnx 2.x, installed there on first use."""
    target = tools_dir() / f"paddle2onnx-{VERSION}"
    if (target / "paddle2onnx").is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    log.info("installing paddle2onnx %s for PIR programs into %s", VERSION, target)
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-deps", "--target", str(staging), f"paddle2onnx=={VERSION}"],
                          capture_output=True, text=True)
    if proc.returncode != 0 or not (staging / "paddle2onnx").is_dir():
        shutil.rmtree(staging, ignore_errors=True)
        raise WherryError(f"cannot install paddle2onnx {VERSION} (needed for ONNX from this PIR program): "
                          f"{child.log_tail(proc.stderr, 3) or 'pip failed'}",
                          f"check network access to PyPI, or install it yourself with 'pip install --no-deps "
                          f"--target {target} paddle2onnx=={VERSION}'")
    try:
        os.rename(staging, target)
    except OSError:  # another wherry installed it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    return target


def export_onnx(json_file: Path, params_file: Path, out_onnx: Path, opset: int,
                input_names: Optional[List[str]] = None, output_names: Optional[List[str]] = None) -> OnnxResult:
    """Convert a PIR program with paddle2onnx 2.x in a child process; same checks as onnx_export."""
    folder = ensure_installed()
    value, _, seconds = child.run(
        "wherry.convert.pir_route:_export_in_child",
        {"json_file": str(json_file), "params_file": str(params_file), "out_onnx": str(out_onnx), "opset": opset,
         "input_names": input_names, "output_names": output_names},
        tool=TOOL, what=f"exporting ONNX opset {opset} from the PIR program", env={"PYTHONPATH": str(folder)})
    return OnnxResult(Path(value["onnx_file"]), int(value["opset"]), seconds)


def _export_in_child(json_file, params_file, out_onnx, opset, input_names, output_names):
    import paddle2onnx

    from wherry.convert.onnx_export import finish

    if not getattr(paddle2onnx, "__version__", "").startswith(VERSION.split(".")[0] + "."):
        raise WherryError(f"the PIR route imported paddle2onnx {paddle2onnx.__version__}, not {VERSION}",
                          f"remove {tools_dir()} so wherry installs it again")
    paddle2onnx.export(json_file, params_file, save_file=out_onnx, opset_version=opset, auto_upgrade_opset=True,
                       verbose=False, enable_onnx_checker=True, optimize_tool="None")
    return finish(out_onnx, opset, input_names, output_names)
