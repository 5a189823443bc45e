"""Paddle Lite export: paddle_lite_opt (its Python API) in a child process, one .nb per place set."""
from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from wherry.convert import child

log = logging.getLogger(__name__)

TOOL = "Paddle Lite opt"


@dataclass
class LiteResult:
    nb_file: Path
    places: str
    seconds: float            # time spent inside the tool's child process
    notes: List[str] = field(default_factory=list)
    kernels: Counter = field(default_factory=Counter)   # (op, precision) of the optimized program

    def count(self, precision: str) -> int:
        return sum(n for (op, prec), n in self.kernels.items() if prec == precision and op != "calib")

    def describe(self) -> str:
        """e.g. "kernels: conv2d/int8 x3, fc/int8 x1, calib x4, float x12" """
        parts = [f"{op}/{prec} x{n}" for (op, prec), n in sorted(self.kernels.items())
                 if prec in ("int8", "fp16") and op != "calib"]
        calib = sum(n for (op, _), n in self.kernels.items() if op == "calib")
        rest = sum(n for (op, prec), n in self.kernels.items() if prec not in ("int8", "fp16") and op != "calib")
        return "kernels: " + ", ".join(parts + ([f"calib x{calib}"] if calib else []) + [f"other x{rest}"])


# opt (at verbosity 4) prints the final program: "Statement conv2d arm/int8_t/NCHW"
_STATEMENT = re.compile(r"generate_program_pass\.cc:\d+ Apply\] Statement (\w+) (\w+)/(\w+)/")
_PRECISION = {"int8_t": "int8", "float": "fp32", "fp16": "fp16", "any": "any", "int32_t": "int32",
              "int64_t": "int64"}


def _final_kernels(log_text: str) -> Counter:
    return Counter((op, _PRECISION.get(prec, prec)) for op, _, prec in _STATEMENT.findall(log_text))


def _last_pass(log_text: str) -> Optional[str]:
    """The optimizer pass that was running when Lite died (it logs each one as it starts)."""
    passes = re.findall(r"== Running pass: ([A-Za-z0-9_]+)", log_text)
    return passes[-1] if passes else None


# Crash sites seen in Paddle Lite 2.13 and the legalization pass that prevents each (docs/legalization.md).
_KNOWN_CRASHES = {
    "variable_place_inference_pass": "a flatten_contiguous_range without its XShape output crashes this pass "
                                     "(the add-xshape legalization pass repairs that)",
    "No attributes called": "an attribute Lite reads was left out of the export (the restore-attrs "
                            "legalization pass repairs that)",
    "not match the true type": "an attribute is stored with another width than Lite reads (the attr-widths "
                               "legalization pass repairs that)",
    "is_dispensable || is_have_output": "an op lacks an output Lite requires (the add-outputs legalization pass "
                                        "repairs that)",
    "has not initialized": "a zero-size persistable variable (the unpersist-empty legalization pass repairs that)",
    "no valid out_shape": "a 0-D tensor (the zero-d legalization pass repairs that)",
}


def _explain(log_text: str) -> str:
    where = _last_pass(log_text)
    ops = re.findall(r"op_type[:= ]+([a-z0-9_]+)", log_text)
    parts = []
    if where:
        parts.append(f"Lite died in {where}")
    parts += [why for signature, why in _KNOWN_CRASHES.items() if signature in log_text]
    if ops:
        parts.append(f"last op mentioned: {ops[-1]}")
    parts.append("run `wherry inspect` on the model to see which ops Lite supports for this target; "
                 "report the model to wherry if every op is supported")
    return "; ".join(parts)


def export_nb(model_file: Path, params_file: Path, out_nb: Path, places, quant_type: Optional[str] = None,
              enable_fp16: bool = False, verbose: bool = True) -> LiteResult:
    """Optimize a legacy Paddle model into ``out_nb`` for Lite ``places`` (list or comma string).

    ``verbose``: opt's pass-by-pass log, which names the pass a crash happened in and lists the final
    kernels (``LiteResult.kernels``); without it (a debug build of an fp32 program) opt runs faster, by
    ~0.3-0.5 s on a DenseNet-121, whose log at verbosity 4 is 10 MB."""
    places = places if isinstance(places, str) else ",".join(places)
    what = f"optimizing for {places}" + (f" with {quant_type}" if quant_type else "") + (" fp16" if enable_fp16 else "")
    value, text, seconds = child.run(
        "wherry.convert.lite_export:_optimize_in_child",
        {"model_file": str(model_file), "params_file": str(params_file), "out_nb": str(out_nb),
         "places": places, "quant_type": quant_type, "enable_fp16": enable_fp16},
        tool=TOOL, what=what, explain_crash=_explain,
        # verbosity 4: opt logs each pass as it starts (names the pass a crash happened in)
        # and the final program with each op's kernel precision (proves int8/fp16 kernels)
        env={"GLOG_v": "4" if verbose else "0"})
    produced = Path(value["nb_file"])
    if not produced.is_file() or produced.stat().st_size == 0:
        raise child.ToolError(f"{TOOL} reported success but wrote no .nb for {places}",
                              "check the model with `wherry inspect` for ops Lite does not support")
    notes = []
    if "Unsupported" in text or "unsupported" in text:
        notes.append("opt log mentions unsupported ops: " + child.log_tail(text, 3).replace("\n", " | "))
    return LiteResult(produced, places, seconds, notes, _final_kernels(text))


def _optimize_in_child(model_file, params_file, out_nb, places, quant_type, enable_fp16):
    from paddlelite.lite import Opt

    opt = Opt()
    opt.set_model_file(model_file)
    opt.set_param_file(params_file)
    opt.set_valid_places(places)
    opt.set_model_type("naive_buffer")
    if quant_type:
        opt.set_quant_model(True)
        opt.set_quant_type(quant_type)
    if enable_fp16:
        opt.enable_fp16()
    # opt appends ".nb" to the output prefix.
    prefix = out_nb[:-3] if out_nb.endswith(".nb") else out_nb
    opt.set_optimize_out(prefix)
    opt.run()
    return {"nb_file": prefix + ".nb"}


def supported_ops(places: str) -> set:
    """Ops Lite has a kernel for on ``places``, from `paddle_lite_opt --print_supported_ops`."""
    value, _, _ = child.run("wherry.convert.lite_export:_supported_ops_in_child", {"places": places},
                            tool=TOOL, what=f"listing supported ops for {places}")
    return set(value["ops"])


def _supported_ops_in_child(places):
    import subprocess
    import sys
    from pathlib import Path as _P

    # The Python API prints this table to stdout from C++; the bundled binary is the only clean source.
    binary = _P(sys.executable).parent / "paddle_lite_opt"
    cmd = [str(binary) if binary.exists() else "paddle_lite_opt", "--print_supported_ops=true",
           f"--valid_targets={places}"]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    ops = set()
    in_table = False
    for line in out.splitlines():
        cols = line.split()
        if cols[:1] == ["OP_name"]:
            in_table = True
        elif in_table and len(cols) > 1 and "Y" in cols[1:]:
            ops.add(cols[0])  # a Y in any place column (target or host) means a kernel exists
    return {"ops": sorted(ops)}
