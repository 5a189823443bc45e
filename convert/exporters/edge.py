"""OpenVINO IR, LiteRT .tflite and Rockchip .rknn: registered here so --format and target profiles know them.

Each is one exporter module, built from the ONNX export by ``convert/edge_export.py`` (the pipeline's stage for
every registered module): it gets the golden inputs (the RKNN toolkit can simulate a graph only in the session
that built it) and the golden outputs to judge that simulation, and a step after the host check (each artifact is
checked in its tool's environment, or on the emulated board, and the verdicts adopted).
"""
from __future__ import annotations

from wherry.convert import litert_export, openvino_export, rknn_export
from wherry.convert.exporters import Exporter, register

for _module, _summary in ((openvino_export, "OpenVINO IR (.xml + .bin) from the ONNX, checked on its CPU plugin in f32"),
                          (litert_export, "LiteRT .tflite from the ONNX by onnx2tf, checked with LiteRT's interpreter"),
                          (rknn_export, "Rockchip NPU .rknn from the ONNX, verified only by the toolkit's simulation")):
    register(Exporter(_module.FORMAT, tuple(_module.PRECISIONS), _summary, module=_module))
