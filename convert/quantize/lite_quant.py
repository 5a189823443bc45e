"""Paddle Lite quantized .nb: fp16 and weight-only via opt, full int8 via Paddle static PTQ then opt.

Lite's x86 runtime returns NaN for weight-only and int8 programs, so these
artifacts are ARM-only: they are built and structurally checked here (which
kernels opt chose, from its optimized-program graph), never run.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from wherry.runtimes import vocabulary
from wherry.convert import child

log = logging.getLogger(__name__)

QUANT_TYPES = {p.name: p.lite_quant_type for p in vocabulary.PRECISIONS.values() if p.lite_quant_type}


# --calib-method -> Paddle PTQ's algo: abs_max is the observed |x| range, KL the KL-divergence threshold,
# hist the hist_percent (0.99999) percentile of |x|
PTQ_ALGOS = {"minmax": "abs_max", "kl": "KL", "percentile": "hist"}


def paddle_ptq(model_file: Path, params_file: Path, calib: Dict[str, np.ndarray], out_dir: Path,
               method: str = "minmax", skip: Sequence[str] = (), fed: Optional[dict] = None) -> Path:
    """Post-training quantization with Paddle (static graph, legacy program): returns the quantized model file.

    ``calib`` holds checked calibration feeds (``calibration.load_samples``: a sequence input padded, with
    its ``NAME.lengths``); each sample is fed on its own, a sequence input as a LoD tensor of its length.
    ``skip``: weights (parameter names) whose layers stay in float (PTQ's skip_tensor_list).
    ``fed``, when given, receives what Paddle was fed: ``samples`` and, per sequence input, the sequence
    lengths the fed LoD tensors carried (read back from them).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    calib_file = out_dir / "calib.npz"
    np.savez(calib_file, **calib)
    value, _, _ = child.run("wherry.convert.quantize.lite_quant:_ptq_in_child",
                            {"model_file": str(model_file), "params_file": str(params_file),
                             "calib_file": str(calib_file), "out_dir": str(out_dir), "algo": PTQ_ALGOS[method],
                             "skip": list(skip)},
                            tool="Paddle PTQ", what="calibrating int8 ranges",
                            env={"FLAGS_enable_pir_api": "0"})  # PTQ works on legacy programs only
    if fed is not None:
        fed.update(value.get("fed") or {})
    return Path(value["model_file"])


def _ptq_in_child(model_file, params_file, calib_file, out_dir, algo="abs_max", skip=()):
    import paddle
    from paddle.base import core
    from paddle.static.quantization import PostTrainingQuantization

    from wherry.convert.quantize.calibration import unpad
    from wherry.runtimes.npz import lengths_key, offsets, sequence_lengths

    paddle.enable_static()
    place = paddle.CPUPlace()
    data = dict(np.load(calib_file))
    count = len(next(iter(data.values())))
    sequences = sorted(sequence_lengths(data))
    fed = {name: [] for name in sequences}   # input -> the lengths of the LoD tensors fed

    def lod_tensor(rows, lengths):
        # Paddle's static Executor takes a DenseTensor as is (a numpy array is wrapped without LoD):
        # the LoD is the sequences' offsets, [[0, length]] for one sequence
        tensor = core.DenseTensor()
        tensor.set(np.ascontiguousarray(rows), place)
        tensor.set_lod([offsets(lengths)])
        return tensor

    def samples():
        first = not fed or not any(fed.values())   # KL and hist read the data twice: record one pass
        for i in range(count):
            sample = unpad(data, i)
            for name in sequences:
                tensor = lod_tensor(sample[name], sample.pop(lengths_key(name)))
                if first:
                    fed[name] += np.diff(tensor.lod()[0]).astype(int).tolist()   # as Paddle holds it
                sample[name] = tensor
            yield sample

    ptq = PostTrainingQuantization(
        executor=paddle.static.Executor(place), model_dir=str(Path(model_file).parent),
        model_filename=Path(model_file).name, params_filename=Path(params_file).name, data_loader=samples,
        batch_nums=count, algo=algo, onnx_format=True, weight_quantize_type="channel_wise_abs_max",
        skip_tensor_list=list(skip) or None)
    ptq.quantize()
    ptq.save_quantized_model(out_dir, model_filename="model.pdmodel", params_filename="model.pdiparams")
    return {"model_file": str(Path(out_dir) / "model.pdmodel"),
            "fed": {"samples": count, "sequence_lengths": fed}}


def nb_program(nb_file: Path) -> Dict[str, int]:
    """Op types of the program stored in a written .nb, counted: re-reading the file proves it is a
    well-formed Lite program (the ARM kernels themselves cannot run here).

    The graph opt draws names ops, not kernels, so kernel precision comes from opt's log
    (convert.lite_export); ``calib`` ops (precision conversions around int8/fp16 kernels) show in both,
    which lets the two be cross-checked.
    """
    value, _, _ = child.run("wherry.convert.quantize.lite_quant:_program_in_child", {"nb_file": str(nb_file)},
                            tool="Paddle Lite opt", what="re-reading the optimized program")
    return value


def _program_in_child(nb_file):
    import tempfile
    from collections import Counter

    from paddlelite.lite import Opt

    with tempfile.TemporaryDirectory() as tmp:
        Opt().visualize_optimized_nb_model(nb_file, tmp)
        text = "\n".join(p.read_text(errors="replace") for p in Path(tmp).glob("*.dot"))
    # op nodes are drawn filled yellow, variables gray
    ops = re.findall(r'label="([^"]*)" style="filled" fillcolor="yellow"', text)
    return dict(Counter(ops))
