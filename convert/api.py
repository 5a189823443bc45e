"""The Python API of the converter: ``wherry.convert.convert(...)`` reads like ``wherry convert``.

    from wherry.convert import convert
    bundles = convert("model.pdmodel", targets=["rpi4"], precisions=["fp32", "int8"], calib="calib.npz", out="out")
    for b in bundles:
        print(b.path, b.ok, [(a.file, a.verdict) for a in b.artifacts])

It fills the pipeline's options and turns its results into plain typed records (also the
``--json`` output of ``wherry convert``, schema ``wherry.convert.v1``).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, List, Optional, Sequence, Union

from .paddle_mode import default_mode_for_children

PathLike = Union[str, "os.PathLike[str]"]
Names = Union[str, Sequence[str]]

NOT_VERIFIED = "not verified"  # --no-verify / verify=False; the other verdicts are a check report's


@dataclass(frozen=True)
class ArtifactOutcome:
    """One artifact of a bundle and what the host verification said about it."""

    file: str
    format: str                 # nb | onnx
    precision: str              # fp32 | fp16 | int8 | int8-weight | int16-weight
    arch: str                   # arm | x86 | any (the CPU family the artifact runs on)
    size: int                   # bytes
    verdict: str                # passed | failed | not verifiable here | not verified | not built | not representable
    reason: str = ""            # why, when not passed
    board_verdict: Optional[str] = None  # an ARM .nb also run on the emulated aarch64 board: passed | failed | ...
    debug_command: Optional[str] = None  # a failed artifact: the `wherry debug` command that finds the diverging layer
    # a failed artifact the conversion searched (--locate): status, op, op_index, summary (report.json "located")
    located: Optional[dict] = None


@dataclass(frozen=True)
class ConvertedBundle:
    """One bundle written by ``convert`` (one per target)."""

    path: Path
    target: str                 # profile name, e.g. rpi4
    arch: str                   # the target's machine: x86_64 | aarch64 | armv7
    ok: bool                    # as `wherry check`: nothing failed or missing, and something was verified
    artifacts: List[ArtifactOutcome]
    warnings: List[str] = field(default_factory=list)
    report: dict = field(default_factory=dict, repr=False)   # report.json, as written in the bundle
    # passed | failed | partly verified | not verified (vocabulary.BUNDLE_VERDICTS): "passed" only when every
    # artifact ran (an ARM .nb on the emulated board) and passed
    verdict: str = NOT_VERIFIED
    # the host verification's runtimes CheckReport (None with verify=False); its results keep the outputs
    # compared, so report_html.write_check_html can draw them (the zoo writes each bundle's page from it)
    check: Optional[object] = field(default=None, repr=False, compare=False)

    @classmethod
    def from_result(cls, result) -> "ConvertedBundle":
        check = result.check
        verdicts = {r.file: (str(r.status), r.reason) for r in check.results} if check is not None else {}
        commands = {r.file: check.debug_command(r) for r in check.results} if check is not None else {}
        board = result.report.get("emulated_verification") or {}
        artifacts = [ArtifactOutcome(a.file, a.format, a.precision, a.arch, a.size,
                                     *verdicts.get(a.file, (NOT_VERIFIED, "")),
                                     board_verdict=(board.get(a.file) or {}).get("status"),
                                     debug_command=commands.get(a.file),
                                     located=(result.report.get("located") or {}).get(a.file))
                     for a in result.manifest.artifacts]
        # Requested but not built (a tool failed, or the format cannot express the model): listed, never passed.
        artifacts += [ArtifactOutcome(n.file, n.format, n.precision, n.arch, 0,
                                      "not representable" if n.status == "not representable" else "not built",
                                      f"{n.tool}: {n.reason}" if n.tool else n.reason)
                      for n in getattr(result, "not_built", [])]
        return cls(Path(result.path), result.target, str(result.manifest.target.get("arch")), bool(result.ok),
                   artifacts, list(result.report.get("warnings", [])), result.report,
                   str(result.check.verdict) if result.check is not None else NOT_VERIFIED, result.check)

    def to_json(self) -> dict:
        data = asdict(replace(self, check=None))   # the check's JSON is in report["verification"]
        data.pop("check")
        data["path"] = str(self.path)
        return data


def convert(model: PathLike, targets: Names = "desktop-x86_64", **options: Any) -> List[ConvertedBundle]:
    """Convert a Paddle inference model into one verified bundle per target.

    The keywords are the fields of ``wherry.convert.options.ConvertOptions``, the same names as the zoo
    file's keys and, with ``-`` for ``_``, the flags of ``wherry convert`` (a list's flag in the singular):
    ``precisions=["fp32", "int8"]`` = ``--precision fp32,int8``, ``out="dist"`` = ``-o dist``,
    ``calib="calib.npz"``, ``eval=...``, ``shapes={"x": [1, 3, 224, 224]}`` (or a list of such maps: one
    golden set each, every artifact checked at each), ``lod={"words": [4, 5]}``, ``verify=False`` =
    ``--no-verify``. ``wherry convert --help`` describes each.

    Returns the bundles in target order. A user error (an unknown keyword or a wrong value included)
    raises ``wherry.runtimes.WherryError`` (with ``.message`` and ``.hint``) and leaves no half-written
    bundle; a failed parity check does not raise: look at ``bundle.ok`` and each artifact's ``verdict``.
    """
    from . import pipeline
    from .options import from_keywords

    if "precision" in options:   # its name before 0.3 (the CLI flag is --precision)
        warnings.warn("convert(precision=...) is now convert(precisions=...)", DeprecationWarning, stacklevel=2)
        options["precisions"] = options.pop("precision")
    with default_mode_for_children():
        return [ConvertedBundle.from_result(r) for r in pipeline.convert(from_keywords(model, {"targets": targets,
                                                                                                **options}))]
