"""ONNX quantization with ONNX Runtime's tools (run in-process: pure Python graph rewriting).

Routes (measured, see docs/quantization.md):
* fp16        - onnxruntime.transformers.float16 with fp32 inputs/outputs kept (keep_io_types)
* int8-weight, int16-weight - weights stored as per-channel int8/int16 with a DequantizeLinear in front
                of the float op (the twin of Lite's weight-only mode; activations stay float)
* int8        - quant_pre_process, then static QDQ quantization: uint8 activations (MinMax ranges
                from the calibration data) and per-channel int8 weights. U8S8 is what ONNX Runtime's
                x86 kernels are fast for: on resnet18 here it ran at 0.33x of fp32 latency, while
                int8 activations (S8S8, the quantize_static default) ran at 1.2x - slower than fp32.
"""
from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np

log = logging.getLogger(__name__)

QUANTIZABLE = ("Conv", "MatMul", "Gemm")  # layers with weights: weight-only targets, --max-drop candidates


def to_fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def weight_only(prepared: Path, dst: Path, bits: int) -> int:
    """Weight-only quantization, the ONNX twin of Lite's --quant_model: the weights of Conv, Gemm and
    MatMul are stored as symmetric per-output-channel int8/int16 and a DequantizeLinear turns them back
    into float in front of the unchanged float op. Activations are never quantized, so accuracy is that
    of the rounded weights alone. Returns how many weights were quantized.

    ONNX Runtime has no such mode of its own (quantize_dynamic also quantizes activations at run time);
    the rewrite is a few lines of graph surgery on the pre-processed model, where paddle2onnx's
    Constant-node weights have become initializers.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(prepared))
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    # per-axis DequantizeLinear needs opset 13, int16 input opset 21; ORT's contrib op takes both at any opset
    standard = opset >= (21 if bits == 16 else 13)
    qtype, qmax = (np.int8, 127) if bits == 8 else (np.int16, 32767)
    inits = {i.name: i for i in graph.initializer}
    graph_inputs = {i.name for i in graph.input}
    dequant, done = [], set()
    for node in graph.node:
        if node.op_type not in QUANTIZABLE or len(node.input) < 2:
            continue
        name = node.input[1]
        if name in done or name not in inits or name in graph_inputs:
            continue
        weight = numpy_helper.to_array(inits[name])
        if weight.dtype != np.float32 or weight.ndim < 2:
            continue
        axis = _output_axis(node, weight.ndim)
        reduce = tuple(i for i in range(weight.ndim) if i != axis)
        scale = (np.abs(weight).max(axis=reduce) / qmax).astype(np.float32)
        scale[scale == 0] = 1.0  # an all-zero channel: any scale reproduces it
        shape = [1] * weight.ndim
        shape[axis] = -1
        q = np.clip(np.round(weight / scale.reshape(shape)), -qmax, qmax).astype(qtype)
        graph.initializer.remove(inits[name])
        graph.initializer.extend([numpy_helper.from_array(q, f"{name}.q{bits}"),
                                  numpy_helper.from_array(scale, f"{name}.scale"),
                                  numpy_helper.from_array(np.zeros(scale.shape, qtype), f"{name}.zero")])
        dequant.append(helper.make_node("DequantizeLinear", [f"{name}.q{bits}", f"{name}.scale", f"{name}.zero"],
                                        [name], name=f"{name}.dequantize", axis=axis,
                                        domain="" if standard else "com.microsoft"))
        done.add(name)
    nodes = dequant + list(graph.node)  # dequantize first: the graph stays topologically sorted
    del graph.node[:]
    graph.node.extend(nodes)
    if not standard and not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(dst))
    return len(done)


def _output_axis(node, ndim: int) -> int:
    """The weight axis that indexes output channels: per-channel scales run along it."""
    if node.op_type == "Gemm":
        trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
        return 0 if trans_b else 1
    if node.op_type == "MatMul":
        return ndim - 1
    return 0  # Conv: [out, in/groups, kh, kw]


class _Reader:
    """ORT's CalibrationDataReader protocol over in-memory samples, one sample per batch."""

    def __init__(self, calib: Dict[str, np.ndarray]):
        self._calib = calib
        self._count = len(next(iter(calib.values())))
        self._next = 0

    def get_next(self):
        if self._next >= self._count:
            return None
        i = self._next
        self._next += 1
        return {k: v[i:i + 1] for k, v in self._calib.items()}

    def rewind(self):
        self._next = 0


def prepare(src: Path, work: Path) -> Path:
    """quant_pre_process (shape inference, constant folding) once; every quantization starts from it."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = work / "prepared.onnx"
    if not prepared.is_file():
        work.mkdir(parents=True, exist_ok=True)
        quant_pre_process(str(src), str(prepared), skip_symbolic_shape=True)
    return prepared


def static_int8(prepared: Path, dst: Path, calib: Dict[str, np.ndarray], exclude: Iterable[str] = (),
                only: Optional[List[str]] = None, activations: str = "uint8", method: str = "minmax") -> None:
    from onnxruntime.quantization import CalibrationMethod

    reader = _Reader(calib)
    # minmax: the observed range; kl: ORT's entropy calibration (the threshold minimizing the KL divergence
    # of the quantized histogram); percentile: ORT's default 99.999th percentile of |x|
    calibrate = {"minmax": CalibrationMethod.MinMax, "kl": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
    with _entropy_bins() if method == "kl" else contextlib.nullcontext():
        _quantize_static(prepared, dst, reader, exclude, only, activations, calibrate)


KL_BINS, KL_QUANTIZED_BINS = 2048, 128


@contextlib.contextmanager
def _entropy_bins():
    """ORT's entropy calibrator with a real histogram: quantize_static (1.23) does not forward num_bins
    and leaves both at 128, where the KL threshold search has nothing to choose and returns the full range
    (measured on the digits CNN: every scale equal to MinMax's). 2048 bins searched down to 128 is the
    usual setting (TensorRT's). quantize_static calls the module's create_calibrator by name, so it is
    wrapped for the duration of one call in this process (quantization is not threaded here)."""
    import importlib

    # the module, not the package's function of the same name
    ort_quantize = importlib.import_module("onnxruntime.quantization.quantize")
    original = ort_quantize.create_calibrator

    def create_calibrator(*args, **kwargs):
        kwargs["extra_options"] = {**(kwargs.get("extra_options") or {}), "num_bins": KL_BINS,
                                   "num_quantized_bins": KL_QUANTIZED_BINS}
        return original(*args, **kwargs)

    ort_quantize.create_calibrator = create_calibrator
    try:
        yield
    finally:
        ort_quantize.create_calibrator = original


def _quantize_static(prepared, dst, reader, exclude, only, activations, calibrate) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    quantize_static(str(prepared), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=calibrate, nodes_to_exclude=list(exclude),
                    # 7-bit weights: x86 CPUs without VNNI (AVX2 only) multiply u8 x s8 pairs with a
                    # saturating 16-bit add, which full 8-bit weights overflow. Measured on the digits
                    # CNN on an AVX2-only host: cosine vs fp32 0.9793 with 8-bit weights (U8S8 and S8S8
                    # alike), 0.99983 with reduce_range. The artifact may run on any x86, so always.
                    reduce_range=True,
                    # every op ORT has a QDQ rule for (Add, Relu, pools too, not just Conv/Gemm): fewer
                    # float round trips between int8 ops, measured 8% faster on resnet18, same cosine
                    nodes_to_quantize=only, op_types_to_quantize=None)


def quantizable_nodes(prepared: Path) -> List[str]:
    import onnx

    return [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in QUANTIZABLE and n.name]


def weight_names(fp32_onnx: Path, nodes: List[str]) -> List[str]:
    """The weights the layers ``nodes`` (of the pre-processed graph) read in the fp32 ONNX export: the
    Paddle parameter names paddle2onnx kept (``conv2d_1.w_0``), by which Paddle's PTQ can keep the same layers
    in float for the .nb. Pre-processing renames what it fuses (``ConvBnFusion_W_conv2d_1.w_0``) and names a
    fused node after its first part (``MatMul.0/MatMulAddFusion``): the export's node of that name is read."""
    import onnx

    graph = onnx.load(str(fp32_onnx)).graph
    wanted = {n.split("/")[0] for n in nodes}
    # input 1 of a Conv / MatMul / Gemm is its weight (an initializer or a Constant, as paddle2onnx writes it)
    return [n.input[1] for n in graph.node if n.name in wanted and len(n.input) > 1]


def coverage(path: Path) -> Dict[str, object]:
    """How much of a quantized ONNX model really is quantized: of its weight layers (Conv, MatMul, Gemm)
    those whose weight is stored as integers (an integer initializer behind a DequantizeLinear), as
    counts and as shares of the weights' elements and of the layers' multiply-accumulates.

    MACs per layer = weight elements x output positions (output elements / output channels), from ONNX
    shape inference with unknown dims taken as 1 (the batch): enough to weigh layers against each other.
    A layer --max-drop kept in float keeps a float initializer and counts as not quantized.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - shapes only weigh MACs; without them MACs stay unknown
        pass
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    producers = {out: n for n in graph.node for out in n.output}
    shapes = {v.name: [d.dim_value or 1 for d in v.type.tensor_type.shape.dim]
              for v in list(graph.value_info) + list(graph.output) if v.type.tensor_type.HasField("shape")}
    layers = quantized = 0
    weights = [0, 0]   # quantized, all (elements)
    macs = [0, 0]
    macs_known = True
    for node in graph.node:
        if node.op_type not in QUANTIZABLE or len(node.input) < 2:
            continue
        name, is_int = node.input[1], False
        dq = producers.get(name)
        if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in inits:
            init, is_int = inits[dq.input[0]], True
        elif name in inits:
            init = inits[name]
        else:
            continue   # an activation x activation product: no weight to quantize
        shape = list(init.dims)
        if len(shape) < 2:
            continue
        size = int(np.prod(shape))
        if is_int and numpy_helper.to_array(init).dtype.kind not in "iu":
            is_int = False
        layers += 1
        quantized += is_int
        weights[0] += size * is_int
        weights[1] += size
        out = shapes.get(node.output[0])
        channels = shape[_output_axis(node, len(shape))]
        if out is None or not channels:
            macs_known = False
            continue
        layer_macs = size * int(np.prod(out)) // channels
        macs[0] += layer_macs * is_int
        macs[1] += layer_macs
    return {"quantized_layers": quantized, "weight_layers": layers,
            "quantized_weights": round(weights[0] / weights[1], 4) if weights[1] else None,
            "quantized_macs": round(macs[0] / macs[1], 4) if macs[1] and macs_known else None}


INT8_NOTE_END = "(uint8 activations, int8 per-channel weights)"


def int8_note(path: Path) -> str:
    """The int8 ONNX artifact's note: what it quantizes (rewritten when --max-drop re-quantizes it)."""
    share = coverage(path)
    return (f"{quantized_node_count(path)} QuantizeLinear nodes, {share['quantized_layers']} of "
            f"{share['weight_layers']} weight layers int8 {INT8_NOTE_END}")


def quantized_node_count(path: Path) -> int:
    import onnx

    return sum(1 for n in onnx.load(str(path)).graph.node if n.op_type in ("QuantizeLinear", "DynamicQuantizeLinear",
                                                                              "MatMulInteger", "ConvInteger"))


def work_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="wherry-quant-")
