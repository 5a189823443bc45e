"""Conversion wall time per model, split into wherry's own work vs the tools' time, and peak memory.

    .venv/bin/python benchmarks/bench_convert.py [--models digits,mobilenet_v3_small,ppocrv4_det]

"tools" is the time spent in the underlying tools' child processes (Paddle
Inference golden run, paddle_lite_opt, paddle2onnx); "wherry" is everything
else (reading, legalizing, hashing, bundle writing, host verification).
Peak memory is the max RSS of this process and of the largest child.
"""
from __future__ import annotations

import argparse
import logging
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conftest import OCR_MODELS, export_vision_model, rapidocr_models  # noqa: E402
from convert import example, pipeline  # noqa: E402


def model_args(name):
    if name == "digits":
        return str(example.MODEL), {"inputs": example.INPUTS}
    if name in OCR_MODELS:
        folder, shape = OCR_MODELS[name]
        return str(rapidocr_models() / folder), {"shapes": {"x": tuple(int(d) for d in shape.split(","))}}
    return str(export_vision_model(name, "legacy", 224)), {}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,mobilenet_v3_small,resnet18,ppocrv4_det")
    parser.add_argument("--targets", default="desktop-x86_64,rpi4")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    print(f"{'model':<22}{'total s':>9}{'tools s':>9}{'wherry s':>10}{'wherry/tools':>14}{'peak MB':>9}")
    for name in args.models.split(","):
        model, extra = model_args(name)
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            results = pipeline.convert(pipeline.ConvertOptions(model=model, targets=args.targets.split(","),
                                                               out_dir=Path(out), **extra))
            total = time.perf_counter() - start
        timings = results[-1].report["timings"]
        tools = timings["tools_s"]
        # verification runs each artifact in an isolated child: counted as wherry's own work
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                   resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
        print(f"{name:<22}{total:>9.2f}{tools:>9.2f}{total - tools:>10.2f}{(total - tools) / tools:>14.2f}"
              f"{peak:>9.0f}")


if __name__ == "__main__":
    main()
