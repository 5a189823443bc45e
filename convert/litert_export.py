"""LiteRT (TFLite) from the bundle's ONNX: ``model.tflite`` (fp32) and ``model.int8.tflite`` (full int8).

onnx2tf 2.6.9 writes ``.tflite`` flatbuffers itself (its ``flatbuffer_direct`` backend): no TensorFlow
(whose wheel alone is 1.87 GB). It needs Python 3.12 or newer, so its environment is a venv of a 3.12
(or 3.13) interpreter found on this machine (``tool_env.find_python``: PATH, pyenv, uv); on a bare
machine install one first (``pyenv install 3.12``, ``uv python install 3.12``, or the distribution's
``python3.12`` package). The venv (~660 MB) also holds ``ai-edge-litert``, LiteRT's Python interpreter,
which checks the artifacts right after conversion; for an aarch64 target they are run on the emulated
aarch64 board too, with LiteRT's aarch64 wheel (``BOARD_PACKAGES``).

Choices, and why:
- inputs keep the ONNX layout (``-k``: NCHW stays NCHW; onnx2tf would otherwise make them NHWC), so the
  bundle's golden inputs feed the ``.tflite`` as they are;
- input shapes are fixed at the golden inputs' shape with batch 1 (``-ois``): onnx2tf's integer
  quantization refuses the shape arithmetic of a dynamic batch (``EQUAL``), and LiteRT models on phones
  are batch 1; wherry's LiteRT backend runs a larger batch one sample at a time;
- int8 is onnx2tf's full integer quantization (int8 weights, activations, inputs and outputs) calibrated
  on ``--calib`` (raw values: mean 0, std 1); the backend quantizes inputs and dequantizes outputs with
  the tensors' own scales, as an app does. An op the quantizer cannot take (HardSigmoid becomes
  ``RELU_0_TO_1``, which has no int8 form here) is a precise not-built reason;
- ONNX names are copied onto the ``.tflite`` tensors (``-coion``), so outputs keep the golden names.
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Dict, List, Optional

from wherry.convert import tool_env
from wherry.runtimes.errors import WherryError

FORMAT = "tflite"
VERSION = "2.6.9"
LITERT_VERSION = "2.1.2"
TOOL = f"onnx2tf {VERSION}"
ENV = tool_env.ToolEnv("onnx2tf", (f"onnx2tf=={VERSION}", f"ai-edge-litert=={LITERT_VERSION}"),
                       pythons=("3.12", "3.13"), label=f"onnx2tf {VERSION} + LiteRT {LITERT_VERSION}")
PRECISIONS = ("fp32", "int8")
ARCH = "any"          # a flatbuffer of ops: LiteRT runs it on any CPU
VERIFIED_ON = f"LiteRT {LITERT_VERSION}'s Python interpreter (x86_64 CPU kernels), in wherry's onnx2tf environment"
# an aarch64 target's .tflite also runs on the emulated aarch64 board (CPython 3.11): 2.3.0 is the LiteRT with
# an aarch64 wheel for it (2.1.2 has none); a newer interpreter reads the older converter's flatbuffers
BOARD_PACKAGES = ("ai-edge-litert==2.3.0",)
BOARD = "emulated aarch64 board (qemu, LiteRT 2.3.0 aarch64 kernels)"

# what onnx2tf names its outputs: the ONNX file's stem + this
_OUTPUT = {"fp32": "_float32.tflite", "int8": "_full_integer_quant.tflite"}


def file_name(precision: str) -> str:
    return "model.tflite" if precision == "fp32" else f"model.{precision}.tflite"


def export(onnx: Path, out: Path, precision: str, calib_npz: Optional[Path] = None,
           shapes: Optional[Dict[str, List[int]]] = None, **_context) -> List[str]:
    value, _, seconds = tool_env.run(
        ENV, "wherry.convert.litert_export:_export_in_child",
        {"onnx": str(onnx), "out": str(out), "precision": precision,
         "calib_npz": str(calib_npz) if calib_npz else None, "shapes": shapes or {}},
        tool=TOOL, what=f"converting the ONNX artifact to an {precision} .tflite")
    shape_text = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in value["shapes"].items())
    notes = [f"{TOOL} .tflite from the ONNX artifact in {seconds:.1f} s; inputs in the ONNX layout, fixed at "
             f"{shape_text} (a larger batch runs one sample at a time)"]
    if precision == "int8":
        notes.append(f"int8: onnx2tf full integer quantization (int8 inputs and outputs) on {value['samples']} "
                     "calibration sample(s)")
    return notes


_UNSUPPORTED = re.compile(r"Unsupported op for strict full integer quantization: index=\d+ op_type=(\w+)")
# the ONNX op behind a TFLite op name where they differ (what a user finds in their model)
_ONNX_OP = {"RELU_0_TO_1": "HardSigmoid"}
# onnx2tf 2.6.9 gives a depthwise convolution's 1-D int32 bias the per-channel axis of its 4-D weights (3:
# tflite_builder/quantization.py, _quantize_bias_tensor copies weight_qparams.quantized_dimension), and the
# LiteRT interpreter it validates the model with refuses every such tensor (mobilenet_v2, measured)
_BIAS_AXIS = re.compile(r"quantized_dimension must be in range \[0, 1\)\. Was (\d+)")
# an int8 model onnx2tf wrote and its own LiteRT check could not prepare: the kernel's failed condition and the op
# (a GRU's BATCH_MATMUL left with a float operand beside an int8 one, measured)
_UNPREPARED = re.compile(r"tflite/kernels/[\w/]+\.cc:\d+ (.+?)(?: was not true\.)?\s*Node number \d+ \((\w+)\) failed to "
                         r"prepare")


def limitation(text: str) -> Optional[WherryError]:
    """The error for an int8 conversion onnx2tf gave up on for a known reason of its own, else None."""
    op = _UNSUPPORTED.search(text)
    if op:
        onnx_op = _ONNX_OP.get(op.group(1))
        return WherryError(f"onnx2tf's int8 quantizer has no int8 form of TFLite op {op.group(1)}"
                           + (f" (the model's ONNX {onnx_op})" if onnx_op else ""),
                           "ship the fp32 .tflite, or replace the op in the model (e.g. HardSigmoid by "
                           "clip(x/6+0.5)) and convert again")
    axis = _BIAS_AXIS.search(text)
    if axis:
        return WherryError(f"onnx2tf's int8 quantizer gives DEPTHWISE_CONV_2D biases the per-channel axis of their "
                           f"weights (quantized_dimension {axis.group(1)} on a 1-D tensor), which "
                           f"LiteRT refuses: an onnx2tf {VERSION} bug",
                           "ship the fp32 .tflite (the model's depthwise convolutions are what its int8 path "
                           "cannot take)")
    kernel = _UNPREPARED.search(text)
    if kernel:
        return WherryError(f"onnx2tf's int8 quantizer wrote a {kernel.group(2)} that LiteRT's kernel cannot prepare "
                           f"({kernel.group(1)[:160]})", "ship the fp32 .tflite")
    return None


def _export_in_child(onnx: str, out: str, precision: str, calib_npz: Optional[str], shapes: dict) -> dict:
    import shutil
    import tempfile

    import numpy as np

    from wherry.convert import edge_calibration
    import onnx as onnx_lib
    import onnx2tf

    graph = onnx_lib.load(onnx, load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    names = [i.name for i in graph.input if i.name not in initializers]
    fixed = {name: [1, *list(shapes[name])[1:]] for name in names if name in shapes}
    missing = [n for n in names if n not in fixed]
    if missing:
        raise WherryError(f"no golden input shape for {', '.join(missing)}")
    start = time.perf_counter()
    samples = 0
    with tempfile.TemporaryDirectory(prefix="onnx2tf-") as work:
        # a copy named plainly: onnx2tf derives file names from the ONNX's name, and with the dots of
        # "model.opset13.onnx" its simplified model was not the one it converted (int8 then failed on EQUAL)
        source = Path(work) / "model.onnx"
        shutil.copyfile(onnx, source)
        # batch and every dim fixed first, then onnxsim folds the shape arithmetic of a dynamic batch
        # (Shape/Slice/Concat before a Reshape): left in, onnx2tf's int8 quantizer meets EQUAL and gives up
        import onnxsim

        simplified, ok = onnxsim.simplify(onnx_lib.load(str(source)), overwrite_input_shapes=fixed)
        if ok:
            onnx_lib.save(simplified, str(source))
        kwargs = dict(input_onnx_file_path=str(source), output_folder_path=str(Path(work) / "out"), copy_onnx_input_output_names_to_tflite=True,
                      keep_ncw_or_nchw_or_ncdhw_input_names=[n for n in names if len(fixed[n]) in (3, 4, 5)],
                      overwrite_input_shape=[f"{n}:{','.join(map(str, fixed[n]))}" for n in names],
                      non_verbose=True)
        if precision == "int8":
            if calib_npz is None:   # never: int8 without --calib is refused before any work (quantize.check_precisions)
                raise WherryError("int8 needs calibration data (--calib)")
            calib = edge_calibration.read(calib_npz, names)
            entries: List[List[object]] = []   # [input name, .npy file, mean, std] per input, as onnx2tf takes them
            for name in names:
                path = Path(work) / f"calib-{len(entries)}.npy"   # NCHW as the inputs stay (-k)
                np.save(path, calib[name].astype(np.float32))
                entries.append([name, str(path), np.zeros(1, np.float32), np.ones(1, np.float32)])
            samples = len(calib[names[0]])
            kwargs.update(output_integer_quantized_tflite=True, custom_input_op_name_np_data_path=entries)
        elif precision != "fp32":
            raise WherryError(f"wherry builds .tflite in {' and '.join(PRECISIONS)}, not {precision}")
        try:
            onnx2tf.convert(**kwargs)
        except Exception as exc:  # noqa: BLE001 - onnx2tf raises RuntimeError chains; the cause is in them
            text = _chain(exc)
            known = limitation(text)
            if known is not None:
                raise known from None
            raise WherryError(f"onnx2tf failed: {text.strip().splitlines()[-1][:300] if text.strip() else exc}") \
                from None
        produced = Path(work) / "out" / ("model" + _OUTPUT[precision])
        if not produced.is_file():
            raise WherryError(f"onnx2tf wrote no {produced.name}")
        shutil.copyfile(produced, out)
    return {"samples": samples, "shapes": fixed, "seconds": time.perf_counter() - start}


def _chain(exc: BaseException) -> str:
    parts: List[str] = []
    link: Optional[BaseException] = exc
    while link is not None and len(parts) < 8:
        parts.append(f"{type(link).__name__}: {link}")
        link = link.__cause__ or link.__context__
    return "\n".join(parts)
