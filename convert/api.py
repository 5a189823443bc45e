"""The Python API of the converter: ``wherry.convert.convert(...)`` reads like ``wherry convert``.

    from wherry.convert import convert
    bundles = convert("model.pdmodel", targets=["rpi4"], precision=["fp32", "int8"], calib="calib.npz", out="out")
    for b in bundles:
        print(b.path, b.ok, [(a.file, a.verdict) for a in b.artifacts])

It fills the pipeline's options and turns its results into plain typed records (also the
``--json`` output of ``wherry convert``, schema ``wherry.convert.v1``).
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import List, Mapping, Optional, Sequence, Union

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
    # passed | failed | partly verified | not verified (checker.BUNDLE_VERDICTS): "passed" only when every
    # artifact ran (an ARM .nb on the emulated board) and passed
    verdict: str = NOT_VERIFIED
    # the host verification's runtimes CheckReport (None with verify=False); its results keep the outputs
    # compared, so report_html.write_check_html can draw them (the zoo writes each bundle's page from it)
    check: Optional[object] = field(default=None, repr=False, compare=False)

    @classmethod
    def from_result(cls, result) -> "ConvertedBundle":
        check = result.check
        verdicts = {r.file: (r.status, r.reason) for r in check.results} if check is not None else {}
        commands = {r.file: check.debug_command(r) for r in check.results} if check is not None else {}
        board = result.report.get("emulated_verification") or {}
        artifacts = [ArtifactOutcome(a.file, a.format, a.precision, a.arch, a.size,
                                     *verdicts.get(a.file, (NOT_VERIFIED, "")),
                                     board_verdict=(board.get(a.file) or {}).get("status"),
                                     debug_command=commands.get(a.file))
                     for a in result.manifest.artifacts]
        # Requested but not built (a tool failed, or the format cannot express the model): listed, never passed.
        artifacts += [ArtifactOutcome(n.file, n.format, n.precision, n.arch, 0,
                                      "not representable" if n.status == "not representable" else "not built",
                                      f"{n.tool}: {n.reason}" if n.tool else n.reason)
                      for n in getattr(result, "not_built", [])]
        return cls(Path(result.path), result.target, str(result.manifest.target.get("arch")), bool(result.ok),
                   artifacts, list(result.report.get("warnings", [])), result.report,
                   result.check.verdict if result.check is not None else NOT_VERIFIED, result.check)

    def to_json(self) -> dict:
        data = asdict(replace(self, check=None))   # the check's JSON is in report["verification"]
        data.pop("check")
        data["path"] = str(self.path)
        return data


def _names(value: Optional[Names]) -> Optional[List[str]]:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def convert(model: PathLike, targets: Names = "desktop-x86_64", *, precision: Optional[Names] = None,
            formats: Optional[Names] = None, out: PathLike = "out", name: Optional[str] = None,
            inputs: Optional[PathLike] = None, images: Optional[PathLike] = None,
            preprocess: Optional[Union[str, Mapping]] = None,
            shapes: Optional[Union[Mapping[str, Sequence[int]], Sequence[Mapping[str, Sequence[int]]]]] = None,
            lod: Optional[Mapping[str, Sequence[int]]] = None, without_nms: bool = False, require_all: bool = False,
            calib: Optional[PathLike] = None, calib_method: str = "minmax",
            eval: Optional[PathLike] = None,  # noqa: A002 - the CLI's --eval
            max_drop: Optional[float] = None, seed: int = 0, skip_passes: Sequence[str] = (),
            force: bool = False, verify: bool = True, check_timeout: Optional[float] = None,
            debug_program: str = "auto") -> List[ConvertedBundle]:
    """Convert a Paddle inference model into one verified bundle per target; the keywords are the
    options of ``wherry convert`` (``precision`` = ``--precision``, ``out`` = ``-o``, ``eval`` = ``--eval``, ...).

    ``lod`` = ``--lod`` (sequence lengths per LoD input), ``without_nms`` / ``require_all`` = the flags,
    ``calib_method`` = ``--calib-method`` (minmax | kl | percentile).
    ``shapes``: one mapping (input -> shape), or a list of them: several golden sets, every artifact
    checked at each (as ``--shape`` naming an input again).
    ``debug_program`` = ``--debug-program`` (auto | always | never).
    ``check_timeout`` = ``--check-timeout`` (seconds per load or run while verifying; None: derived from
    the golden run's time, 0: no limit).
    Returns the bundles in target order. A user error raises ``wherry.runtimes.WherryError`` (with
    ``.message`` and ``.hint``) and leaves no half-written bundle; a failed parity check does not raise:
    look at ``bundle.ok`` and each artifact's ``verdict``.
    """
    import json

    from . import pipeline

    if isinstance(preprocess, Mapping):
        preprocess = json.dumps(dict(preprocess))
    shape_sets = [{k: tuple(int(d) for d in v) for k, v in one.items()}
                  for one in ([shapes] if isinstance(shapes, Mapping) else list(shapes or []))]
    options = pipeline.ConvertOptions(
        model=str(model), targets=_names(targets) or ["desktop-x86_64"], formats=_names(formats), out_dir=Path(out),
        inputs=Path(inputs) if inputs else None, images=Path(images) if images else None, preprocess=preprocess,
        shapes=shape_sets[0] if shape_sets else {}, other_shapes=shape_sets[1:],
        lod={k: [int(n) for n in v] for k, v in (lod or {}).items()}, without_nms=without_nms, require_all=require_all,
        precisions=_names(precision),
        calib=Path(calib) if calib else None, calib_method=calib_method, eval_data=Path(eval) if eval else None, max_drop=max_drop, seed=seed,
        skip_passes=list(skip_passes), force=force, verify=verify, check_timeout=check_timeout, name=name,
        debug_program=debug_program)
    with default_mode_for_children():
        return [ConvertedBundle.from_result(r) for r in pipeline.convert(options)]
