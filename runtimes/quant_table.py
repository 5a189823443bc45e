"""The quantization table of a bundle's report.json in human units (KB, ms, %, ratios): one formatting for
`wherry convert`'s terminal summary and the HTML page (runtimes/report_html.py)."""
from __future__ import annotations

from typing import List, Optional, Tuple, TypedDict

HEADER = ("artifact", "precision", "size", "vs fp32", "latency", "vs fp32", "accuracy", "drop", "top-1 = fp32",
          "quantized: layers", "weights", "MACs")
BOARD = "emulated aarch64 board"   # a row's measured_on when the ARM .nb was scored from the board's outputs


class QuantRow(TypedDict, total=False):
    """One artifact's row of report.json's ``quantization.rows`` (convert/quantize/evaluate.py's ``measure``).
    Not total: a report of an older wherry may lack a key (``accuracy``/``accuracy_drop`` before ``score``)."""

    artifact: str
    precision: str
    size: Optional[int]                 # bytes
    size_ratio: Optional[float]
    latency_ms: Optional[float]
    latency_ratio: Optional[float]
    metric: Optional[str]
    score: Optional[float]              # %
    score_drop: Optional[float]         # points, positive = worse
    measured_on: Optional[str]          # "host" or BOARD
    accuracy: Optional[float]
    accuracy_drop: Optional[float]
    top1_agreement: Optional[float]     # %
    runs_here: bool
    quantized_layers: Optional[int]
    weight_layers: Optional[int]
    quantized_weights: Optional[float]  # share, 0..1
    quantized_macs: Optional[float]     # share, 0..1


class QuantSection(TypedDict, total=False):
    """report.json's ``quantization`` (convert/pipeline.py)."""

    reference_accuracy: Optional[float]
    notes: List[str]
    task: Optional[str]
    metric: Optional[str]
    eval_samples: Optional[int]
    rows: List[QuantRow]


def header(quant: QuantSection) -> Tuple[str, ...]:
    """HEADER with the task metric the rows hold (CER, box F1 @ IoU 0.5, mIoU; accuracy for classification)."""
    metric = quant.get("metric") or "accuracy"
    return HEADER[:6] + (metric, "worse by") + HEADER[8:]


def _fmt(value: Optional[float], spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def rows(quant: QuantSection) -> List[Tuple[str, ...]]:
    """One row of display strings per artifact of ``quant["rows"]``, in ``HEADER``'s order."""
    out: List[Tuple[str, ...]] = []
    for r in quant.get("rows", []):
        layers = (f"{r['quantized_layers']}/{r['weight_layers']}" if r.get("weight_layers") is not None else "-")
        size = r.get("size")
        out.append((str(r.get("artifact")), str(r.get("precision")), "-" if size is None else f"{size / 1024:.1f} KB",
                    _fmt(r.get("size_ratio"), ".2f", "x"),
                    _fmt(r.get("latency_ms"), ".3f", " ms") if r.get("runs_here", True)
                    else "ARM only" if str(r.get("artifact")).endswith(".nb") else "not here",
                    _fmt(r.get("latency_ratio"), ".2f", "x"), _fmt(r.get("score", r.get("accuracy")), ".2f", "%") + (" (board)" if r.get("measured_on") == BOARD else ""),
                    _fmt(r.get("score_drop", r.get("accuracy_drop")), "+.2f", " pt"), _fmt(r.get("top1_agreement"), ".2f", "%"),
                    layers, _fmt(r.get("quantized_weights"), ".0%"), _fmt(r.get("quantized_macs"), ".0%")))
    return out
