"""Paddle Lite quantized .nb: fp16 and weight-only via opt, full int8 via Paddle static PTQ then opt.

Lite's x86 runtime returns NaN for weight-only and int8 programs, so these
artifacts are ARM-only: they are built and structurally checked here (which
kernels opt chose, from its optimized-program graph), never run.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Dict

import numpy as np

from convert import child

log = logging.getLogger(__name__)

QUANT_TYPES = {"int8-weight": "QUANT_INT8", "int16-weight": "QUANT_INT16"}


def paddle_ptq(model_file: Path, params_file: Path, calib: Dict[str, np.ndarray], out_dir: Path) -> Path:
    """Post-training quantization with Paddle (static graph, legacy program): returns the quantized model file."""
    out_dir.mkdir(parents=True, exist_ok=True)
    calib_file = out_dir / "calib.npz"
    np.savez(calib_file, **calib)
    value, _, _ = child.run("convert.quantize.lite_quant:_ptq_in_child",
                            {"model_file": str(model_file), "params_file": str(params_file),
                             "calib_file": str(calib_file), "out_dir": str(out_dir)},
                            tool="Paddle PTQ", what="calibrating int8 ranges",
                            env={"FLAGS_enable_pir_api": "0"})  # PTQ works on legacy programs only
    return Path(value["model_file"])


def _ptq_in_child(model_file, params_file, calib_file, out_dir):
    import paddle
    from paddle.static.quantization import PostTrainingQuantization

    paddle.enable_static()
    data = dict(np.load(calib_file))
    count = len(next(iter(data.values())))

    def samples():
        for i in range(count):
            yield {name: array[i:i + 1] for name, array in data.items()}

    ptq = PostTrainingQuantization(
        executor=paddle.static.Executor(paddle.CPUPlace()), model_dir=str(Path(model_file).parent),
        model_filename=Path(model_file).name, params_filename=Path(params_file).name, data_loader=samples,
        batch_nums=count, algo="abs_max", onnx_format=True, weight_quantize_type="channel_wise_abs_max")
    ptq.quantize()
    ptq.save_quantized_model(out_dir, model_filename="model.pdmodel", params_filename="model.pdiparams")
    return {"model_file": str(Path(out_dir) / "model.pdmodel")}


def kernel_summary(nb_file: Path) -> Dict[str, int]:
    """How many ops of the optimized program got int8 / fp16 kernels (from opt's graph of the .nb)."""
    value, _, _ = child.run("convert.quantize.lite_quant:_kernels_in_child", {"nb_file": str(nb_file)},
                            tool="Paddle Lite opt", what="reading the optimized program")
    return value


def _kernels_in_child(nb_file):
    import tempfile

    from paddlelite.lite import Opt

    with tempfile.TemporaryDirectory() as tmp:
        Opt().visualize_optimized_nb_model(nb_file, tmp)
        text = "\n".join(p.read_text(errors="replace") for p in Path(tmp).glob("*.dot"))
    # node labels name each op with its kernel: "conv2d(...int8...)"; count what precision each got
    labels = re.findall(r'label="([^"]*)"', text)
    return {"ops": len(labels),
            "int8": sum(1 for label in labels if "int8" in label.lower()),
            "fp16": sum(1 for label in labels if "fp16" in label.lower()),
            "calib": sum(1 for label in labels if label.lower().startswith("calib"))}
