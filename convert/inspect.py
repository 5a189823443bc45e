"""`wherry inspect`: what a model is and whether each target's Lite can run its ops."""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import List

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


def inspect(model: str, targets: List[str]) -> dict:
    info = source.read(model)
    notes: List[str] = []
    report = {
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
    legacy_ops = _legacy_ops(info, notes)
    if info.format == "pir":
        from wherry.convert import pir
        report["pir_translator_ops"] = pir.SUPPORTED_OPS
    supported_by_places = {}
    for name in targets:
        profile = load_profile(name)
        places = ",".join(profile.lite_places)
        entry = {"arch": profile.arch, "lite_places": places, "artifacts": profile.artifacts}
        if "nb" in profile.artifacts and legacy_ops is not None:
            if places not in supported_by_places:
                supported_by_places[places] = lite_export.supported_ops(places)
            missing = sorted(op for op in legacy_ops if op not in supported_by_places[places])
            entry["lite_unsupported_ops"] = missing
            entry["lite_ok"] = not missing
        report["targets"][profile.name] = entry
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
    if "pir_translator_ops" in report:
        lines.append(f"PIR ops the translator maps ({len(report['pir_translator_ops'])}): " +
                     ", ".join(op.split(".", 1)[-1] for op in report["pir_translator_ops"]))
    lines += [f"note     {n}" for n in report["notes"]]
    return "\n".join(lines)
