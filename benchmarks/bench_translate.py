"""PIR -> legacy translation time and peak memory, on the largest zoo model (or the ones named).

    .venv/bin/python benchmarks/bench_translate.py [--models picodet,ernie_tiny] [--repeat 5]

Each model is exported in PIR format once (cached like the tests' models), then translated
``--repeat`` times in this process; the table shows the op count (nested ops included), the first
run (which also loads Paddle's op protos and deserializes the program once for operand names), the
best and median of the repeats, the median per thousand ops, and the peak memory the translation
allocates in Python (tracemalloc; Paddle's own C++ allocations are not in it).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from support.paths import CACHE, PADDLE_VERSION  # noqa: E402
from support.zoo import FAMILIES  # noqa: E402


def zoo_model(name: str) -> Path:
    folder = CACHE / "zoo" / f"paddle-{PADDLE_VERSION}" / "pir"
    if not (folder / name / "model.json").is_file():
        subprocess.run([sys.executable, str(ROOT / "tests" / "support" / "zoo" / "export.py"), "pir", str(folder), name],
                       check=True, capture_output=True)
    return folder / name / "model.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help="comma-separated zoo names (default: the one with the most ops)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    from wherry.convert import pir

    from wherry.convert.pir import schema

    schema.legacy_ops()  # imports paddle and reads the op protos once: not translation time
    names = args.models.split(",") if args.models else sorted(FAMILIES)
    models = {name: zoo_model(name) for name in names}
    counts = {name: sum(1 for _ in pir.read_program(path, with_names=False).walk()) for name, path in models.items()}
    if not args.models:
        largest = max(counts, key=counts.get)
        models, counts = {largest: models[largest]}, {largest: counts[largest]}
    print(f"{'model':<14} {'PIR ops':>7} {'first s':>8} {'best s':>8} {'median s':>9} {'s/1000 ops':>11} "
          f"{'peak MB':>8}")
    for name, path in models.items():
        with tempfile.TemporaryDirectory() as out:  # the first run also loads op protos and asks Paddle for op names
            start = time.perf_counter()
            pir.translate(*_files(path), out)
            first = time.perf_counter() - start
        times = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                pir.translate(*_files(path), out)
                times.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as out:  # memory in a run of its own: tracing slows Python down
            tracemalloc.start()
            pir.translate(*_files(path), out)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        best, median = min(times), statistics.median(times)
        print(f"{name:<14} {counts[name]:>7} {first:>8.3f} {best:>8.3f} {median:>9.3f} "
              f"{median / counts[name] * 1000:>11.3f} {peak / 2**20:>8.1f}")
    return 0


def _files(json_path: Path):
    return json_path, json_path.with_suffix(".pdiparams")


if __name__ == "__main__":
    sys.exit(main())
