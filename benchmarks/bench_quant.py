"""ONNX int8 vs fp32 on resnet18: size, host latency and cosine, measured in one run.

    .venv/bin/python benchmarks/bench_quant.py [--model resnet18] [--calib-samples 32]

The model is paddle.vision resnet18 with seeded He-normal random weights (tests/export_model.py),
converted by wherry with --precision fp32,fp16,int8-weight,int8; calibration and golden inputs are
seeded standard-normal images. Goals from the issue: size <= 0.26x, latency <= 0.35x, cosine >= 0.999.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conftest import export_vision_model  # noqa: E402
from convert import pipeline  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--calib-samples", type=int, default=32)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    model = export_vision_model(args.model, "legacy", 224)
    with tempfile.TemporaryDirectory() as tmp:
        calib = Path(tmp) / "calib.npz"
        np.savez(calib, x=np.random.default_rng(1).standard_normal((args.calib_samples, 3, 224, 224)).astype("float32"))
        result = pipeline.convert(pipeline.ConvertOptions(
            model=str(model), targets=["desktop-x86_64"], formats=["onnx"], out_dir=Path(tmp) / "out",
            precisions=["fp32", "fp16", "int8-weight", "int8"], calib=calib))[0]
        latency = interleaved_latency(result.path, [a.file for a in result.manifest.artifacts], args.runs)
    rows = {r["artifact"]: r for r in result.report["quantization"]["rows"]}
    checks = {a.file: a for a in result.check.results}
    base = latency["model.onnx"]
    print(f"{args.model} 1x3x224x224 on this host (ONNX Runtime {result.manifest.tools['onnxruntime']}; latency = "
          f"median of {args.runs} rounds, the artifacts run in turn within each round)")
    print(f"{'artifact':<24}{'size MB':>9}{'size x':>8}{'latency ms':>12}{'latency x':>11}{'cosine':>10}  verdict")
    for name, row in rows.items():
        worst = checks[name].worst()
        print(f"{name:<24}{row['size'] / 1e6:>9.2f}{row['size_ratio']:>8.3f}{latency[name]:>12.2f}"
              f"{latency[name] / base:>11.3f}{worst.cosine:>10.5f}  {checks[name].status}")
    int8 = rows["model.int8.onnx"]
    cos = checks["model.int8.onnx"].worst().cosine
    print(f"int8 vs fp32: size {int8['size_ratio']:.3f}x (goal <= 0.26), latency {latency['model.int8.onnx'] / base:.3f}x "
          f"(goal <= 0.35), cosine {cos:.5f} (goal >= 0.999)")


def interleaved_latency(bundle: Path, files, runs: int) -> dict:
    """Median latency per artifact, each round running every artifact once, so load drifts hit all alike."""
    import runtimes

    x = {"x": np.random.default_rng(2).standard_normal((1, 3, 224, 224)).astype("float32")}
    sessions = {f: runtimes.open(str(bundle / f)) for f in files}
    times = {f: [] for f in files}
    for f, s in sessions.items():
        s.run(x)  # warm-up
    for _ in range(runs):
        for f, s in sessions.items():
            start = time.perf_counter()
            s.run(x)
            times[f].append(time.perf_counter() - start)
    return {f: statistics.median(t) * 1000 for f, t in times.items()}


if __name__ == "__main__":
    main()
