"""Rockchip NPU: ``model.rknn`` (fp16) and ``model.int8.rknn`` from the bundle's ONNX with rknn-toolkit2.

rknn-toolkit2 2.5.0 (closed source) lives in a venv of its own (``tool_env``, ~665 MB): it pins
numpy <= 1.26.4, onnx <= 1.18 and protobuf <= 4.25.4, which wherry's environment does not hold, and it
declares torch <= 2.4, which it imports but never calls on the ONNX path (torch from PyPI is a 2.7 GB
CUDA download). The venv therefore gets the toolkit with ``--no-deps``, its other dependencies pinned,
and a stand-in ``torch`` package (``rknn_torch_stub.py``).

Verification is honest to what runs: there is no NPU here. The toolkit's x86 simulator runs a graph only
in the session that built it (a saved ``.rknn`` cannot be loaded back into it), so the exporter child
simulates the compiled graph on the golden inputs right after building it (one sample at a time, NCHW as
the golden data are: ``inference`` assumes NHWC unless told), and the parent judges those outputs by the
artifact's tolerance. The result is recorded as "simulated: the toolkit's simulation of the compiled
graph, not the NPU" in the artifact's notes, its check reason, ``report.json["simulated_verification"]``
and the JSON documents; the artifact's verdict stays "not verifiable here": never a board pass.
Rebuilds are not byte-identical, so the hash in the manifest is that of the file this run wrote.

int8 is the toolkit's own post-training quantization on ``--calib``: one ``.npy`` per sample (NCHW),
listed in a dataset file with paths relative to it. rv1106 has no fp16: only int8 is built for it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional

from wherry.convert import tool_env
from wherry.runtimes.errors import WherryError

FORMAT = "rknn"
VERSION = "2.5.0"
TOOL = f"rknn-toolkit2 {VERSION}"
SIMULATED = "simulated: the toolkit's simulation of the compiled graph, not the NPU"
PLATFORMS = ("rk3588", "rk3576", "rk3568", "rk3566", "rv1106")
NO_FP16 = ("rv1106",)
ENV = tool_env.ToolEnv(
    "rknn-toolkit2",
    ("protobuf==4.25.4", "numpy==1.26.4", "onnx==1.18.0", "onnxruntime==1.23.2", "psutil", "ruamel.yaml",
     "scipy", "tqdm", "opencv-python-headless", "fast-histogram"),
    pythons=("3.10", "3.11", "3.12"), no_deps=(f"rknn-toolkit2=={VERSION}",),
    site_files={"torch/__init__.py": (Path(__file__).parent / "rknn_torch_stub.py").read_text()},
    label=f"rknn-toolkit2 {VERSION}")
PRECISIONS = ("fp16", "int8")
FLOAT_FOR_FP32 = "fp16"   # the NPU computes in fp16 or int8: asked for fp32, the float .rknn is fp16
ARCH = "arm"          # the NPU of an ARM SoC: nothing on this host runs it


def file_name(precision: str) -> str:
    return "model.rknn" if precision == "fp16" else f"model.{precision}.rknn"


def export(onnx: Path, out: Path, precision: str, calib_npz: Optional[Path] = None, shapes: Optional[dict] = None,
           *, platform: str = "rk3588", golden_npz: Optional[Path] = None,
           simulated_npz: Optional[Path] = None) -> List[str]:
    """Build ``out`` and, with ``golden_npz``, simulate it on those inputs into ``simulated_npz``."""
    if platform not in PLATFORMS:
        raise WherryError(f"rknn-toolkit2 {VERSION} builds for {', '.join(PLATFORMS)}, not {platform!r}")
    if precision == "fp16" and platform in NO_FP16:
        raise WherryError(f"{platform}'s NPU has no fp16: rknn-toolkit2 builds int8 models only for it",
                          "ask for --precision int8 (with --calib)")
    try:
        value, _, seconds = tool_env.run(
            ENV, "wherry.convert.rknn_export:_export_in_child",
            {"onnx": str(onnx), "out": str(out), "precision": precision, "platform": platform,
             "calib_npz": str(calib_npz) if calib_npz else None, "shapes": shapes or {},
             "golden_npz": str(golden_npz) if golden_npz else None,
             "simulated_npz": str(simulated_npz) if simulated_npz else None},
            tool=TOOL, what=f"building the {platform} {precision} .rknn")
    except WherryError as exc:
        if "NonMaxSuppression" not in exc.message:
            raise
        # the toolkit wants NMS's boxes and scores constant (a static graph): a detector's NMS stays on the host
        raise type(exc)(exc.message, "rknn-toolkit2 cannot compile an NMS over computed boxes: convert with "
                                     "--without-nms (the manifest names the NMS to apply to the raw boxes and "
                                     "scores on the host)") from None
    notes = [f"{TOOL} .rknn for {platform} from the ONNX artifact in {seconds:.1f} s (build {value['build_s']:.1f} s); "
             "inputs NCHW at batch 1 (a larger batch runs one sample at a time)"]
    if precision == "int8":
        notes.append(f"int8: rknn-toolkit2 post-training quantization on {value['samples']} calibration sample(s)")
    return notes


def _export_in_child(onnx: str, out: str, precision: str, platform: str, calib_npz: Optional[str], shapes: dict,
                     golden_npz: Optional[str], simulated_npz: Optional[str]) -> dict:
    import os
    import tempfile

    import numpy as np

    from wherry.convert import edge_calibration
    from rknn.api import RKNN

    import onnx as onnx_lib

    graph = onnx_lib.load(onnx, load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    names = [i.name for i in graph.input if i.name not in initializers]
    missing = [n for n in names if n not in shapes]
    if missing:
        raise WherryError(f"no golden input shape for {', '.join(missing)}")
    sizes = [[1, *list(shapes[n])[1:]] for n in names]
    samples = 0
    with tempfile.TemporaryDirectory(prefix="rknn-") as work:
        dataset = None
        if precision == "int8":
            if calib_npz is None:   # never: int8 without --calib is refused before any work (quantize.check_precisions)
                raise WherryError("int8 needs calibration data (--calib)")
            calib = edge_calibration.read(calib_npz, names)
            samples = len(calib[names[0]])
            dataset = os.path.join(work, "dataset.txt")
            with open(dataset, "w") as listing:   # one line per sample, its inputs' files relative to the list
                for i in range(samples):
                    files = []
                    for j, name in enumerate(names):
                        files.append(f"s{i}_{j}.npy")
                        np.save(os.path.join(work, files[-1]), calib[name][i:i + 1].astype(np.float32))
                    listing.write(" ".join(files) + "\n")
        elif precision != "fp16":
            raise WherryError(f"wherry builds .rknn in {' and '.join(PRECISIONS)}, not {precision}")
        rknn = RKNN(verbose=False)
        try:
            rknn.config(target_platform=platform)
            _ok(rknn.load_onnx(model=onnx, inputs=names, input_size_list=sizes), "load the ONNX model")
            start = time.perf_counter()
            _ok(rknn.build(do_quantization=precision == "int8", dataset=dataset), f"build for {platform}")
            build_s = time.perf_counter() - start
            _ok(rknn.export_rknn(out), "write the .rknn")
            if golden_npz and simulated_npz:
                # only this session can simulate the graph it built: now or never
                _ok(rknn.init_runtime(), "start its simulator")
                with np.load(golden_npz) as data:
                    feeds = {k: data[k] for k in data.files}
                count = len(feeds[names[0]])
                rows = [rknn.inference(inputs=[feeds[n][i:i + 1] for n in names], data_format=["nchw"] * len(names))
                        for i in range(count)]
                if any(r is None for r in rows):
                    raise WherryError("the toolkit's simulator returned no outputs")
                outputs = [o.name for o in graph.output]
                np.savez(simulated_npz, **{name: np.concatenate([r[k] for r in rows])
                                           for k, name in enumerate(outputs)})
        finally:
            rknn.release()
    return {"samples": samples, "build_s": build_s}


def _ok(code, what: str) -> None:
    if code != 0:
        raise WherryError(f"rknn-toolkit2 could not {what} (code {code}); the toolkit's log follows")
