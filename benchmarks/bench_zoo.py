"""`wherry zoo` acceptance ratios, measured in one run on this machine.

    .venv/bin/python benchmarks/bench_zoo.py [--single digits,mobilenet_v3_small] [--zoo-models 12] [--ray]

1. single conversion: the worker's wall time for one model (desktop-x86_64 + rpi4, both bundles,
   verification included, imports included) vs the unavoidable tool work: the golden Paddle run,
   paddle_lite_opt per place set, paddle2onnx (their child processes, from report.json) plus one
   load + run of each artifact that runs here (timed in this process, no isolation) and the ARM
   .nb's run on the emulated aarch64 board where its runtime is built;
2. cached re-run of the same zoo vs its first run (wall time of the command);
3. a zoo of >= 12 small models x 2 targets: -j 2 vs -j 1 (no cache), with identical verdicts;
   with --ray also on a local Ray instance (identical verdicts required).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from conftest import export_detection_model, export_legal_model, export_vision_model  # noqa: E402
from wherry.convert import example  # noqa: E402

TARGETS = ["desktop-x86_64", "rpi4"]


def model_entry(name: str) -> str:
    if name == "digits":
        return f'path = "{example.MODEL}"\ninputs = "{example.INPUTS}"\n'
    if name == "nms_detector":
        return f'path = "{export_detection_model()}"\n'
    if name.startswith("legal_"):
        return f'path = "{export_legal_model(name[6:])}"\n'
    base, _, fmt = name.partition(":")
    size = {"misc_ops": 16, "untranslatable": 16}.get(base, 64)
    return f'path = "{export_vision_model(base, fmt or "legacy", size)}"\n'


# small models the test suite exports (legacy and PIR): enough for a 12-model zoo in minutes
ZOO_MODELS = ["digits", "squeezenet1_1", "squeezenet1_1:pir", "mobilenet_v2", "mobilenet_v2:pir",
              "mobilenet_v3_small", "mobilenet_v3_small:pir", "ocr_like:pir", "misc_ops:pir", "nms_detector",
              "legal_swish", "legal_instance_norm", "legal_lstm", "legal_gru"]


def write_zoo(folder: Path, names) -> Path:
    text = f"targets = {json.dumps(TARGETS)}\n" + "".join(
        f"[models.{n.replace(':', '_')}]\n{model_entry(n)}" for n in names)
    (folder / "zoo.toml").write_text(text)
    return folder / "zoo.toml"


def zoo(*args) -> tuple:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "zoo", *map(str, args), "--json"],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"wherry zoo failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout), wall


def verdicts(doc) -> dict:
    return {(c["model"], c["target"]): (c["status"], sorted((a["file"], a["verdict"]) for a in c["artifacts"]))
            for c in doc["cells"]}


def artifact_runs(bundle: Path) -> float:
    """One load + run of each artifact that runs here, in this process: the floor of verification."""
    import numpy as np

    from wherry import runtimes
    from wherry.runtimes.bundle import load_bundle

    total, manifest = 0.0, load_bundle(bundle).manifest
    feeds = dict(np.load(bundle / "golden" / "inputs.npz"))
    for art in manifest.artifacts:
        if art.arch == "arm":
            continue
        start = time.perf_counter()
        with runtimes.open(str(bundle), artifact=art.file) as session:
            session.run(feeds)
        total += time.perf_counter() - start
    return total


def single(names, scratch: Path) -> None:
    print("1. single conversion (desktop-x86_64 + rpi4): worker wall time vs unavoidable tool work")
    print(f"   {'model':<22}{'total s':>9}{'tools s':>9}{'runs s':>8}{'ratio':>8}{'peak MB':>9}")
    for name in names:
        folder = scratch / f"single-{name.replace(':', '_')}"
        folder.mkdir()
        doc, _ = zoo(write_zoo(folder, [name]), "-o", folder / "out", "--no-cache")
        cells = doc["cells"]
        report = json.loads((Path(cells[-1]["bundle"]) / "report.json").read_text())
        tools = report["timings"]["tools_s"]   # one timeline for all targets of the call
        # the ARM .nb's one run is on the emulated board where its runtime is built (qemu: slow, but a run)
        board = sum(s for step, s in report["timings"]["steps_s"].items() if "emulated_aarch64_board" in step)
        runs = sum(artifact_runs(Path(c["bundle"])) for c in cells) + board
        total = cells[0]["task_s"]
        print(f"   {name:<22}{total:>9.2f}{tools:>9.2f}{runs:>8.2f}{total / (tools + runs):>8.2f}"
              f"{cells[0]['peak_rss_mb']:>9.0f}")


def cached(names, scratch: Path) -> None:
    folder = scratch / "cached"
    folder.mkdir()
    zoo_file = write_zoo(folder, names)
    first, first_s = zoo(zoo_file, "-o", folder / "out", "--cache-dir", folder / "cache")
    again, again_s = zoo(zoo_file, "-o", folder / "out", "--cache-dir", folder / "cache")
    same = verdicts(first) == verdicts(again)
    print(f"2. cached re-run ({len(first['cells'])} cells): first {first_s:.2f} s, re-run {again_s:.2f} s "
          f"({again['summary']['cached']} cached) = {again_s / first_s:.3f}x; verdicts identical: {same}")


def parallel(count: int, with_ray: bool, scratch: Path) -> None:
    names = ZOO_MODELS[:count]
    folder = scratch / "parallel"
    folder.mkdir()
    zoo_file = write_zoo(folder, names)
    serial, serial_s = zoo(zoo_file, "-o", folder / "serial", "--no-cache", "-j", "1")
    two, two_s = zoo(zoo_file, "-o", folder / "two", "--no-cache", "-j", "2")
    print(f"3. zoo of {len(names)} models x {len(TARGETS)} targets ({serial['summary']['passed']} of "
          f"{len(serial['cells'])} cells passed): -j 1 {serial_s:.1f} s, -j 2 {two_s:.1f} s = "
          f"{two_s / serial_s:.2f}x; verdicts identical: {verdicts(serial) == verdicts(two)}")
    peaks = [c["peak_rss_mb"] for c in two["cells"] if c["peak_rss_mb"]]
    print(f"   peak RSS per worker (process tree): {min(peaks):.0f}-{max(peaks):.0f} MB")
    if with_ray:
        ray, ray_s = zoo(zoo_file, "-o", folder / "ray", "--no-cache", "--ray", "local")
        print(f"   local Ray instance: {ray_s:.1f} s = {ray_s / serial_s:.2f}x of -j 1; "
              f"verdicts identical: {verdicts(serial) == verdicts(ray)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", default="digits,mobilenet_v3_small",
                        help="models for the single-conversion ratio (names as in ZOO_MODELS)")
    parser.add_argument("--zoo-models", type=int, default=12, help=f"models in the zoo (max {len(ZOO_MODELS)})")
    parser.add_argument("--ray", action="store_true", help="also run the zoo on a local Ray instance")
    parser.add_argument("--skip", default="", help="comma list of parts to skip: single,cached,parallel")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-zoo-") as scratch:
        scratch = Path(scratch)
        if "single" not in skip:
            single(args.single.split(","), scratch)
        if "cached" not in skip:
            cached(args.single.split(","), scratch)
        if "parallel" not in skip:
            parallel(args.zoo_models, args.ray, scratch)


if __name__ == "__main__":
    main()
