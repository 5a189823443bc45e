"""wherry's words, each defined once: verdicts (with every way they are shown), precisions (with their
default tolerances and what quantizing means for each), artifact formats and CPU families.

Tables, CLI choices and help texts read these; nothing else spells a verdict's label or a precision's
properties. This module imports nothing of wherry's, so every layer (the board's runtime included) can.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Dict, Optional, Tuple


class Verdict(str, Enum):
    """What became of one artifact (or, for PARTLY_VERIFIED / NOT_VERIFIED, a whole bundle) on a device.

    A str: ``Verdict.PASSED == "passed"`` and it is written to JSON as its value."""

    PASSED = "passed"
    FAILED = "failed"
    NOT_VERIFIABLE = "not verifiable here"    # cannot run on this device (an ARM .nb on x86): never a pass
    NOT_VERIFIED = "not verified"             # nothing ran (--no-verify), or, for a bundle, nothing could
    PARTLY_VERIFIED = "partly verified"       # a bundle: what ran passed, but something could not run
    NOT_BUILT = "not built"                   # requested, and a tool failed to build it
    NOT_REPRESENTABLE = "not representable"   # the format cannot express the model: said, not failed

    # shown as the plain word everywhere (print, f-strings, a list's repr: users print verdicts), also where
    # Python 3.12 would show the member's name; hashed as its value, so a member and the word read from JSON
    # are one key in a dict or set
    __str__ = str.__str__
    __repr__ = str.__repr__
    __format__ = str.__format__
    __hash__ = str.__hash__

    @property
    def label(self) -> str:
        """As the check table and a bundle summary show it: PASS, FAIL, PARTLY VERIFIED, ..."""
        return _SHOWN[self][0]

    @property
    def cell(self) -> str:
        """As a matrix cell shows it (zoo, fleet): pass, FAIL, n/v here, ..."""
        return _SHOWN[self][1]

    @property
    def mark(self) -> str:
        """As a Markdown matrix shows it, with its sign."""
        return _SHOWN[self][2]

    @property
    def rank(self) -> int:
        """Worse first: the verdict of several artifacts of one kind is the one with the lowest rank."""
        return list(_SHOWN).index(self)


# verdict -> (label, cell, mark), worst first
_SHOWN: Dict[Verdict, Tuple[str, str, str]] = {
    Verdict.FAILED: ("FAIL", "FAIL", "❌ FAIL"),
    Verdict.NOT_BUILT: ("NOT BUILT", "NOT BUILT", "❌ not built"),
    Verdict.NOT_VERIFIABLE: ("not verifiable here", "n/v here", "➖ not verifiable here"),
    Verdict.NOT_VERIFIED: ("NOT VERIFIED", "not verified", "➖ not verified"),
    Verdict.PARTLY_VERIFIED: ("PARTLY VERIFIED", "partly verified", "➖ partly verified"),
    Verdict.NOT_REPRESENTABLE: ("not representable", "not repr.", "➖ not representable"),
    Verdict.PASSED: ("PASS", "pass", "✅ pass"),
}

#: A whole bundle's verdict on one device: "passed" only when every built artifact ran and passed.
BUNDLE_VERDICTS = (Verdict.PASSED, Verdict.FAILED, Verdict.PARTLY_VERIFIED, Verdict.NOT_VERIFIED)


@dataclass(frozen=True)
class Precision:
    """An artifact precision and everything wherry ties to it."""

    name: str
    # default tolerance (runtimes.parity): fp32 conversions match Paddle to ~1e-6; fp16 keeps ~3 significant
    # digits; quantized models are judged mostly by direction (cosine): int8's per-element errors are large
    rtol: float
    min_cosine: float
    detection_iou: float                 # NMS rows match when boxes overlap this much (quantized boxes move more)
    weight_bits: Optional[int] = None    # weight-only: weights stored as integers of this width
    lite_quant_type: Optional[str] = None   # weight-only: Paddle Lite opt's quant_type
    integer: bool = False                # integer arithmetic or weights: judged with the quantization report
    # fp32's rounding-noise rule (runtimes/bundle.Tolerance): an error within noise_rtol x scale whose energy is
    # noise_min_snr_db below the signal's is rounding, not a wrong op
    noise_rtol: Optional[float] = None
    noise_min_snr_db: Optional[float] = None

    @property
    def quantized(self) -> bool:
        return self.name != "fp32"


# in report order: the float reference first, then by how much is quantized
PRECISIONS: Dict[str, Precision] = {p.name: p for p in (
    Precision("fp32", rtol=1e-4, min_cosine=0.9999, detection_iou=0.9, noise_rtol=1e-3, noise_min_snr_db=80.0),
    Precision("fp16", rtol=1e-2, min_cosine=0.999, detection_iou=0.8),
    Precision("int16-weight", rtol=5e-3, min_cosine=0.9999, detection_iou=0.8, weight_bits=16,
              lite_quant_type="QUANT_INT16", integer=True),
    Precision("int8-weight", rtol=0.1, min_cosine=0.995, detection_iou=0.6, weight_bits=8,
              lite_quant_type="QUANT_INT8", integer=True),
    Precision("int8", rtol=0.25, min_cosine=0.98, detection_iou=0.5, integer=True),
)}
QUANTIZED = tuple(name for name, p in PRECISIONS.items() if p.quantized)

@dataclass(frozen=True)
class Format:
    """A model format: the file suffix it is recognised by and the runtime backend that runs it."""

    name: str
    suffix: str
    runtime: str
    artifact: bool = True   # a bundle may hold it (the original Paddle model is only ever run, never shipped)


# A new artifact kind is a row here (what runs it on a device) and an exporter (convert/exporters/).
FORMATS: Dict[str, Format] = {f.name: f for f in (
    Format("nb", ".nb", "paddlelite"),
    Format("onnx", ".onnx", "onnxruntime"),
    Format("openvino", ".xml", "openvino"),     # an IR: the .xml names it, its weights are the .bin beside it
    Format("tflite", ".tflite", "litert"),
    Format("rknn", ".rknn", "rknn"),            # a Rockchip NPU's; rknn-toolkit-lite2 runs it on the board only
    Format("paddle", ".pdmodel", "paddle", artifact=False),
)}
ARTIFACT_FORMATS = tuple(name for name, f in FORMATS.items() if f.artifact)
FORMAT_RUNTIME = {name: f.runtime for name, f in FORMATS.items()}

#: CPU families an artifact is built for ("any": runs wherever its runtime does).
ARCH_FAMILIES = ("arm", "x86", "any")
