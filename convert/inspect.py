"""`wherry inspect`: what a model is and whether each target's Lite can run its ops."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Dict, List

from wherry.convert import lite_export, source
from wherry.targets import load_profile

log = logging.getLogger(__name__)


def _legacy_ops(info: source.ModelInfo, notes: List[str]):
    """The legacy op list Lite would see (PIR programs are translated first)."""
    if info.format != "pir":
        return info.ops
    from wherry.convert import normalize, pir

    with tempfile.TemporaryDirectory(prefix="wherry-inspect-") as tmp:
        try:
            legacy = normalize.to_legacy(info, Path(tmp))
        except pir.UntranslatableOps as exc:
            notes.append("PIR ops the translator cannot map yet: " + ", ".join(exc.op_names))
            return None
        translated = source.read(legacy.model_file)
    notes.append("PIR program: Lite support is judged on its translation to a legacy program")
    return translated.ops


def _paddle_missing_ops(info: source.ModelInfo, notes: List[str]) -> List[str]:
    """Ops of a legacy / Paddle 1.x program that the installed Paddle no longer defines (Paddle 3 dropped many
    LoD ops): Paddle Inference cannot be the reference there, Paddle 2.6.2 is (``legacy_paddle``)."""
    from importlib import metadata

    from wherry.convert import legacy_paddle, paddle_registry

    known = paddle_registry.registry()
    missing = sorted(op for op in info.ops if op not in known and op not in ("feed", "fetch"))
    if missing:
        notes.append(f"the installed Paddle ({metadata.version('paddlepaddle')}) has no op {', '.join(missing)}: "
                     f"convert takes the golden outputs from Paddle {legacy_paddle.VERSION} instead (its own tool "
                     "environment from PyPI, made once and cached)")
    return missing


def _pir_ops(info: source.ModelInfo, targets: List[str], supported_by_places) -> dict:
    """Per PIR op kind: how it translates (or why not) and which artifacts can carry it."""
    from wherry.convert import pir, pir_route

    places = sorted({",".join(load_profile(t).lite_places) for t in targets if "nb" in load_profile(t).artifacts})
    for p in places:
        if p not in supported_by_places:
            supported_by_places[p] = lite_export.supported_ops(p)
    rows = {}
    for name, kind in sorted(pir.analyze(info.files.model_file).items()):
        if name in ("pd_op.data", "pd_op.feed", "pd_op.fetch", "builtin.combine", "builtin.split", "cf.yield"):
            continue
        legacy = sorted(kind.legacy)
        artifacts = []
        if kind.translates:
            artifacts.append("onnx")
            artifacts += [f"nb ({p})" for p in places if all(op in supported_by_places[p] for op in legacy)]
        else:
            artifacts.append(f"onnx via {pir_route.TOOL}, if it converts the op")
        rows[name] = {"count": kind.count, "translates": kind.translates, "route": sorted(kind.routes),
                      "legacy_ops": legacy, "artifacts": artifacts,
                      "problem": kind.problems[0] if kind.problems else None}
    return rows


def inspect(model: str, targets: List[str]) -> dict:
    info = source.read(model)
    notes: List[str] = []
    report: Dict[str, Any] = {
        "model": str(model),
        "format": info.format,
        "files": [str(p) for p in info.files.all_files()[:3]],
        "inputs": [s.to_json() for s in info.inputs],
        "outputs": [s.to_json() for s in info.outputs],
        "ops": dict(sorted(info.ops.items())),
        "control_flow": info.has_control_flow,
        "targets": {},
        "notes": notes,
    }
    if info.format != "pir":
        report["paddle_missing_ops"] = _paddle_missing_ops(info, notes)
    legacy_ops = _legacy_ops(info, notes)
    supported_by_places: Dict[str, Any] = {}
    for name in targets:
        profile = load_profile(name)
        places = ",".join(profile.lite_places)
        entry: Dict[str, Any] = {"arch": profile.arch, "lite_places": places, "artifacts": profile.artifacts}
        if "nb" in profile.artifacts and legacy_ops is not None:
            if places not in supported_by_places:
                supported_by_places[places] = lite_export.supported_ops(places)
            missing = sorted(op for op in legacy_ops if op not in supported_by_places[places])
            entry["lite_unsupported_ops"] = missing
            entry["lite_ok"] = not missing
        report["targets"][profile.name] = entry
    if info.format == "pir":
        report["pir_ops"] = _pir_ops(info, targets, supported_by_places)
    if info.has_control_flow:
        notes.append("the program has control flow (sub-blocks): Paddle Lite often rejects those")
    return report


def render(report: dict) -> str:
    lines = [f"model    {report['model']}", f"format   {report['format']}"]
    for kind in ("inputs", "outputs"):
        for spec in report[kind]:
            dims = ",".join("?" if d is None else str(d) for d in spec["shape"])
            lines.append(f"{kind[:-1]:<8} {spec['name']}: {spec['dtype']}[{dims}]")
    ops = report["ops"]
    lines.append(f"ops      {sum(ops.values())} ({len(ops)} kinds): " +
                 ", ".join(f"{k}×{v}" for k, v in sorted(ops.items(), key=lambda kv: -kv[1])))
    for name, entry in report["targets"].items():
        if "lite_ok" not in entry:
            status = "no .nb for this target" if "nb" not in entry["artifacts"] else "Lite support unknown"
        elif entry["lite_ok"]:
            status = "all ops supported by Lite"
        else:
            status = "Lite lacks: " + ", ".join(entry["lite_unsupported_ops"])
        lines.append(f"target   {name} ({entry['arch']}, Lite places {entry['lite_places']}): {status}")
    for name, row in report.get("pir_ops", {}).items():
        if row["translates"]:
            how = "; ".join(row["route"]) + (f" [{', '.join(row['legacy_ops'])}]" if row["legacy_ops"] else "")
            lines.append(f"pir op   {name}: translates ({how}); artifacts: {', '.join(row['artifacts'])}")
        else:
            lines.append(f"pir op   {name}: NOT translated ({row['problem'].split(': ', 1)[-1]}); "
                         f"artifacts: {', '.join(row['artifacts'])}")
    lines += [f"note     {n}" for n in report["notes"]]
    return "\n".join(lines)
