"""ONNX quantization with ONNX Runtime's tools (run in-process: pure Python graph rewriting).

Routes (measured, see docs/quantization.md):
* fp16        - onnxruntime.transformers.float16 with fp32 inputs/outputs kept (keep_io_types)
* int8-weight - quantize_dynamic with uint8 weights (ORT has no int8 ConvInteger CPU kernel)
* int8        - quant_pre_process, then static QDQ quantization: uint8 activations (MinMax ranges
                from the calibration data) and per-channel int8 weights. U8S8 is what ONNX Runtime's
                x86 kernels are fast for: on resnet18 here it ran at 0.33x of fp32 latency, while
                int8 activations (S8S8, the quantize_static default) ran at 1.2x - slower than fp32.
int16-weight has no ONNX Runtime equivalent and is built for Lite only.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import numpy as np

log = logging.getLogger(__name__)

QUANTIZABLE = ("Conv", "MatMul", "Gemm")


def to_fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))


def weight_only_int8(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8, per_channel=False)


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
                only: Optional[List[str]] = None) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    reader = _Reader(calib)
    quantize_static(str(prepared), str(dst), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=list(exclude),
                    nodes_to_quantize=only, op_types_to_quantize=list(QUANTIZABLE))


def quantizable_nodes(prepared: Path) -> List[str]:
    import onnx

    return [n.name for n in onnx.load(str(prepared)).graph.node if n.op_type in QUANTIZABLE and n.name]


def quantized_node_count(path: Path) -> int:
    import onnx

    return sum(1 for n in onnx.load(str(path)).graph.node if n.op_type in ("QuantizeLinear", "DynamicQuantizeLinear",
                                                                              "MatMulInteger", "ConvInteger"))


def work_dir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="wherry-quant-")
