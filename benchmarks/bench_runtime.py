"""Overhead of runtimes.Session.run over calling ONNX Runtime / Paddle Lite directly, and the
cost of the numpy-2 input workaround for Paddle Lite.

    .venv/bin/python benchmarks/bench_runtime.py [--runs 40] [--blocks 7] [--threads 1]

Model: paddle.vision mobilenet_v3_small (1x3x224x224), exported once (legacy format,
clip_extra=False so Paddle Lite's x86 opt keeps flatten's XShape) and converted with
paddle2onnx and Paddle Lite opt; cached under .cache/bench-runtime. Both ways are timed
in the same process on the same native session, call by call in alternation (direct, Session, direct, ...), so load from
other processes on the shared machine hits both alike; the ratio is the median of the
per-pair ratios. Goal: ratio <= 1.02. The wrapper's own work (feed validation) is also
timed alone, without the model.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from wherry import runtimes  # noqa: E402
from wherry.runtimes.backends.paddlelite_backend import set_input  # noqa: E402

CACHE = Path(os.environ.get("WHERRY_CACHE", ROOT / ".cache")) / "bench-runtime"

_BUILD = textwrap.dedent('''
    import os, sys
    os.environ["FLAGS_enable_pir_api"] = "0"
    out = sys.argv[1]
    import paddle
    from paddle.vision import models
    paddle.seed(0)
    model = models.mobilenet_v3_small(num_classes=1000)
    model.eval()
    paddle.jit.save(model, out + "/model", clip_extra=False,
                    input_spec=[paddle.static.InputSpec([None, 3, 224, 224], "float32", "x")])
    import paddle2onnx
    paddle2onnx.export(out + "/model.pdmodel", out + "/model.pdiparams", out + "/model.onnx", opset_version=13)
    from paddlelite.lite import Opt
    opt = Opt()
    opt.set_model_file(out + "/model.pdmodel")
    opt.set_param_file(out + "/model.pdiparams")
    opt.set_valid_places("x86")
    opt.set_model_type("naive_buffer")
    opt.set_optimize_out(out + "/model.x86")
    opt.run()
''')


def build() -> Path:
    if (CACHE / "model.x86.nb").is_file() and (CACHE / "model.onnx").is_file():
        return CACHE
    CACHE.mkdir(parents=True, exist_ok=True)
    script = CACHE / "build.py"
    script.write_text(_BUILD)
    print("exporting and converting mobilenet_v3_small (once) ...", file=sys.stderr)
    subprocess.run([sys.executable, str(script), str(CACHE)], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return CACHE


def alternate(ways: dict, runs: int, blocks: int) -> dict:
    """Lowest block median (ms) of each way, the ways interleaved block by block."""
    best = {name: float("inf") for name in ways}
    for fn in ways.values():  # warm-up
        for _ in range(5):
            fn()
    for _ in range(blocks):
        for name, fn in ways.items():
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            best[name] = min(best[name], statistics.median(times) * 1000.0)
    return best


def paired(direct, session, runs: int, blocks: int) -> dict:
    """Median latencies and the median of per-pair ratios, direct and Session called in turn."""
    for _ in range(5):
        direct()
        session()
    d_times, s_times, ratios = [], [], []
    for i in range(runs * blocks):
        order = (direct, session) if i % 2 == 0 else (session, direct)
        spent = {}
        for fn in order:
            t0 = time.perf_counter()
            fn()
            spent[fn] = time.perf_counter() - t0
        d_times.append(spent[direct])
        s_times.append(spent[session])
        ratios.append(spent[session] / spent[direct])
    return {"direct": statistics.median(d_times) * 1000, "session": statistics.median(s_times) * 1000,
            "ratio": statistics.median(ratios)}


def bench_ort(folder: Path, feeds, threads: int, runs: int, blocks: int) -> dict:
    # "Direct" calls the very InferenceSession the Session wraps: two separately created
    # native sessions differ by a few percent on their own (memory placement), which would
    # drown the wrapper's cost.
    session = runtimes.open(folder / "model.onnx", threads=threads)
    direct = session._impl._sess
    names = [o.name for o in direct.get_outputs()]
    return paired(lambda: direct.run(names, feeds), lambda: session.run(feeds), runs, blocks)


def bench_lite(folder: Path, feeds, runs: int, blocks: int) -> dict:
    session = runtimes.open(folder / "model.x86.nb")
    predictor = session._impl._predictor  # the same native predictor (see bench_ort)
    x = feeds["x"]

    def direct():
        # The plain light-API call sequence (exact only under numpy 1.x).
        predictor.get_input(0).from_numpy(x)
        predictor.run()
        return predictor.get_output(0).numpy()
    return paired(direct, lambda: session.run(feeds), runs, blocks)


def bench_inputs(folder: Path, x, runs: int, blocks: int) -> dict:
    from paddlelite import lite

    config = lite.MobileConfig()
    config.set_model_from_file(str(folder / "model.x86.nb"))
    tensor = lite.create_paddle_predictor(config).get_input(0)
    flat = x.ravel()

    def as_list():
        tensor.resize(list(x.shape))
        tensor.set_float_data(flat.tolist())
    return alternate({"from_numpy (wrong under numpy 2)": lambda: set_input(tensor, x, exact_copy=False),
                      "from_numpy + copy into Lite buffer (wherry)": lambda: set_input(tensor, x, exact_copy=True),
                      "resize + set_float_data(list)": as_list}, max(5, runs // 4), blocks)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--blocks", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    folder = build()
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype("float32")
    feeds = {"x": x}
    print(f"mobilenet_v3_small 1x3x224x224, numpy {np.__version__}, {args.blocks} blocks x {args.runs} runs")
    ok = True
    for label, result in (("onnxruntime", bench_ort(folder, feeds, args.threads, args.runs, args.blocks)),
                          ("paddlelite", bench_lite(folder, feeds, args.runs, args.blocks))):
        ratio = result["ratio"]
        ok &= ratio <= 1.02
        print(f"{label:12s} direct {result['direct']:.3f} ms  Session.run {result['session']:.3f} ms  "
              f"ratio {ratio:.4f} ({'ok' if ratio <= 1.02 else 'ABOVE GOAL'} <= 1.02; "
              f"overhead {(result['session'] - result['direct']) * 1000:+.1f} us)")
    from wherry.runtimes.npz import validate_feeds

    session = runtimes.open(folder / "model.onnx")
    n = 20000
    t0 = time.perf_counter()
    for _ in range(n):
        validate_feeds(session.inputs, feeds)
    print(f"feed validation alone: {(time.perf_counter() - t0) / n * 1e6:.1f} us per call")
    print("Paddle Lite input of 1x3x224x224 float32 (median ms):")
    for name, ms in bench_inputs(folder, x, args.runs, args.blocks).items():
        print(f"  {name:46s} {ms:.4f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
