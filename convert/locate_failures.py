"""After a conversion's host check: where each failed artifact leaves the model, found before it ships.

``wherry debug`` is what a user runs once an artifact fails; a conversion runs it for them (``--locate
auto``, the default) on the fp32 ``.nb`` and ONNX artifacts that failed on this host (a wrong result or a
crash), in a child process with a time limit, before the bundle is published. The report records, per
artifact, the op where it leaves the model or dies and why; a search that could not finish says so and
names the command that runs it by hand. Healthy conversions pay nothing.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List, Optional

from wherry.runtimes.checker import FAILED, CheckReport, debuggable
from wherry.runtimes.errors import WherryError

log = logging.getLogger(__name__)

# A search is a few extra runs of each format (a bisection for a large graph, ~log2(ops) builds for a crash):
# seconds for the models wherry's tests convert, ~20 s for a DenseNet-121. Longer, and it is stopped.
TIME_LIMIT_S = 600.0
STOPPED = "not located"


def to_search(check: Optional[CheckReport]) -> List[str]:
    """The artifacts of a host check that failed and that the first-divergence search can take itself."""
    if check is None:
        return []
    return [r.file for r in check.results if r.status == FAILED and debuggable(r)]


def locate(stage: Path, files: List[str], model: Optional[str], time_limit: float = TIME_LIMIT_S,
           device: Optional[str] = None) -> Dict[str, Dict[str, Any]]:
    """file -> what the search found (``record``), for the artifacts ``files`` of the bundle at ``stage``
    (unpublished). ``model``: the source model, when the bundle keeps no program to debug with. ``device``:
    where the artifacts failed, when not on this host (the emulated board, for an ARM .nb)."""
    from wherry.convert import child

    try:
        found, _, _ = child.run("wherry.convert.locate_failures:search",
                                {"bundle": str(stage), "files": files, "model": model, "device": device},
                                tool="wherry debug", what="locating the first diverging op", timeout=time_limit)
        return {file: {**record, "device": device} for file, record in dict(found).items()}
    except WherryError as exc:   # a crash of the search itself, or the time limit: said, never fatal
        said = exc.message.splitlines()[0]
        log.warning("the first-divergence search stopped: %s", said)
        return {f: {"status": STOPPED, "summary": f"the first-divergence search did not finish: {said}",
                    "device": device} for f in files}


def search(bundle: str, files: List[str], model: Optional[str], device: Optional[str] = None
           ) -> Dict[str, Dict[str, Any]]:
    """In the child: ``wherry debug BUNDLE --artifact F ... [--device D]``, each artifact's finding as one record."""
    from wherry.convert.debug.locate import debug

    report = debug(bundle, model, files, device=device)
    return {a.file: record(a.to_json()) for a in report.artifacts}


def record(artifact: Dict[str, Any]) -> Dict[str, Any]:
    """One artifact of a debug report (its JSON) as the conversion's report keeps it: status, the op, a line."""
    first = artifact.get("first_divergence")
    kept: Dict[str, Any] = {"status": artifact["status"], "summary": summary(artifact)}
    if first:
        outputs = first.get("outputs") or []
        kept.update(op=first["type"], op_index=first["index"], artifact_node=first["artifact_node"],
                    tensor=outputs[0]["name"] if outputs else None,
                    inputs_within_tolerance=_inputs_fine(first))
    return kept


def _inputs_fine(first: Dict[str, Any]) -> bool:
    return all(i.get("matched_by") == "feed" or (i.get("parity") or {}).get("verdict") == "passed"
               for i in first["inputs"])


def summary(artifact: Dict[str, Any]) -> str:
    """The finding in one line, as the conversion's summary shows it."""
    first, status = artifact.get("first_divergence"), artifact["status"]
    if not first:
        if status != "no divergence":
            return f"{status}: {artifact.get('reason', '')}".rstrip(": ")
        rounding = next((n for n in artifact.get("reason", "").split("; ") if "float rounding" in n), "")
        return ("no op leaves tolerance when the program is run op by op" + (f": {rounding}" if rounding else
                                                                              " (the outputs differ only as a whole)"))
    label = f"{first['type']} #{first['index']}"
    cause = ("it reads no tensor: the op itself is the cause" if not first["inputs"] else
             "its inputs are within tolerance: the op is the cause" if _inputs_fine(first)
             else "an input already differs: the cause may be upstream")
    if status == "crashed":
        return f"Paddle Lite dies in op {label} ({cause})"
    worst = next((o["parity"] for o in first.get("outputs", []) if (o.get("parity") or {}).get("verdict") == "failed"),
                 None)
    numbers = ""
    if worst and isinstance(worst.get("max_abs"), float) and isinstance(worst.get("cosine"), float):
        numbers = f"max abs {worst['max_abs']:.3g}, cosine {worst['cosine']:.6f}; "
    return f"first diverging op {label} -> {first['outputs'][0]['name']} ({numbers}{cause})"
