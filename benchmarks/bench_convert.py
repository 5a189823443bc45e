"""Conversion wall time per model, split into wherry's own work vs the tools' time, and peak memory.

    .venv/bin/python benchmarks/bench_convert.py [--models digits,mobilenet_v3_small,ppocrv4_det]

"tools" is the time spent in the underlying tools' child processes (Paddle
Inference golden run, paddle_lite_opt, paddle2onnx); "wherry" is everything
else (reading, legalizing, hashing, bundle writing, host verification, and
waiting for the emulated board's check of the ARM .nb where Lite's ARM runtime
is built). "board" is that check's own time: it runs beside the other steps, so
a large model's qemu run shows in "wherry" only where it outlasts them
(benchmarks/bench_zoo.py weighs it against one bare run on the board).
Peak memory is the max RSS of this process and of the largest child.
"""
from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support.models import OCR_MODELS, export_vision_model, rapidocr_models  # noqa: E402
from wherry.convert import example, pipeline  # noqa: E402


def model_args(name):
    if name == "digits":
        return str(example.MODEL), {"inputs": example.INPUTS}
    if name in OCR_MODELS:
        folder, shape = OCR_MODELS[name]
        return str(rapidocr_models() / folder), {"shapes": {"x": tuple(int(d) for d in shape.split(","))}}
    base, _, fmt = name.partition(":")  # "resnet18:pir" = the PIR export (goes through the translator)
    return str(export_vision_model(base, fmt or "legacy", 224)), {}


def measure_one(name: str, targets: str) -> dict:
    """Convert one model in this process; its own and its children's peak RSS belong to this model only."""
    model, extra = model_args(name)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        results = pipeline.convert(pipeline.ConvertOptions(model=model, targets=targets.split(","),
                                                           out=Path(out), **extra))
        total = time.perf_counter() - start
    timings = results[-1].report["timings"]  # one timeline is shared by all targets of a call
    board = sum(s for step, s in timings["steps_s"].items() if "emulated_aarch64_board" in step)
    return {"model": name, "total_s": total, "tools_s": timings["tools_s"], "board_s": board,
            "peak_self_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "peak_child_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,mobilenet_v3_small,mobilenet_v3_small:pir,resnet18,ppocrv4_det")
    parser.add_argument("--targets", default="desktop-x86_64,rpi4")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one model, print JSON
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.one:
        print(json.dumps(measure_one(args.one, args.targets)))
        return
    print(f"targets: {args.targets}; 'tools' = Paddle Inference golden run + paddle_lite_opt + paddle2onnx "
          f"child processes; 'wherry' = the rest (reading, legalizing, hashing, writing, host verification, waiting "
          f"for the emulated board); 'board' = the board's check of the ARM .nb, run beside the other steps")
    print(f"{'model':<22}{'total s':>9}{'tools s':>9}{'wherry s':>10}{'wherry/tools':>14}{'board s':>9}"
          f"{'peak MB (wherry)':>18}{'peak MB (child)':>17}")
    for name in args.models.split(","):
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--targets", args.targets],
                              capture_output=True, text=True, check=True)
        m = json.loads(proc.stdout.strip().splitlines()[-1])
        wherry = m["total_s"] - m["tools_s"]
        print(f"{name:<22}{m['total_s']:>9.2f}{m['tools_s']:>9.2f}{wherry:>10.2f}{wherry / m['tools_s']:>14.2f}"
              f"{m['board_s']:>9.2f}{m['peak_self_mb']:>18.0f}{m['peak_child_mb']:>17.0f}")


if __name__ == "__main__":
    main()
