"""The fleet report: one matrix of bundle x board -> verdict, worst error and board, as a terminal
table, JSON (schema wherry.fleet.v1) and JUnit XML (one testsuite per place)."""
from __future__ import annotations

import datetime
import xml.etree.ElementTree as ET
from typing import List, Optional

from wherry.runtimes.text_table import table_lines
from wherry.runtimes.vocabulary import Verdict

from .job import PlaceRun



def _worst(artifact: dict) -> Optional[float]:
    errors = [o.get("max_abs") for o in artifact.get("outputs", []) if isinstance(o.get("max_abs"), (int, float))]
    return max(errors) if errors else None


def cell(run: PlaceRun, bundle: str) -> str:
    """One matrix cell: each artifact's verdict (and its worst max abs error)."""
    if run.status == "unavailable":
        return "board unavailable"
    check = run.checks.get(bundle)
    if check is None:
        return run.status if run.status != "passed" else "-"
    if check["report"] is None:
        return f"error: {check['message'].splitlines()[0][:60] if check['message'] else check['exit_code']}"
    parts = []
    for artifact in check["report"]["artifacts"]:
        worst = _worst(artifact)
        status = artifact["status"]
        verdict = Verdict(status).cell if status in set(Verdict) else status
        parts.append(f"{artifact['file']} {verdict}" + (f" {worst:.2g}" if worst is not None and status in
                                                         (Verdict.PASSED, Verdict.FAILED) else ""))
    return ", ".join(parts)


def to_json(runs: List[PlaceRun], bundles: List[str], ok: bool) -> dict:
    return {"ok": ok, "bundles": bundles,
            "boards": [{"place": r.place, "device": r.url, "status": r.status, "message": r.message,
                        "info": r.info, "waited_s": round(r.waited_s, 2), "seconds": round(r.seconds, 2),
                        "checks": {b: {"exit_code": c["exit_code"], "message": c["message"],
                                       "report": c["report"]} for b, c in r.checks.items()}}
                       for r in runs]}


def table(runs: List[PlaceRun], bundles: List[str]) -> str:
    rows = [("board", "device", *bundles)]
    for r in runs:
        rows.append((r.place, r.url or "-", *(cell(r, b) for b in bundles)))
    lines = table_lines(rows)
    for r in runs:
        if r.message:
            lines.append(f"  {r.place}: {r.message}")
        for b, c in r.checks.items():
            if c["report"] is None and c["message"]:
                lines.append(f"  {r.place} {b}: {c['message']}")
        if r.info:
            lines.append(f"  {r.place}: {', '.join(f'{k} {v}' for k, v in r.info.items())}")
    counts = {s: sum(1 for r in runs if r.status == s) for s in ("passed", "failed", "unavailable", "error")}
    lines.append(f"fleet: {len(runs)} board(s): " + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    return "\n".join(lines)


def junit_xml(runs: List[PlaceRun], bundles: List[str]) -> str:
    """One testsuite per place; one testcase per bundle and artifact. A board that could not be reached is
    one skipped testcase per bundle (it says nothing about the bundle), an error is an <error>."""
    root = ET.Element("testsuites", name="wherry fleet")
    for r in runs:
        suite = ET.SubElement(root, "testsuite", name=r.place, hostname=r.url or "",
                              timestamp=datetime.datetime.now().replace(microsecond=0).isoformat(),
                              time=f"{r.seconds:.3f}")
        counts = {"failures": 0, "errors": 0, "skipped": 0}
        for bundle in bundles:
            check = r.checks.get(bundle)
            if r.status == "unavailable" or check is None:
                case = ET.SubElement(suite, "testcase", classname=f"wherry.fleet.{r.place}", name=bundle)
                if r.status == "unavailable":
                    ET.SubElement(case, "skipped", message=f"board unavailable: {r.message}")
                    counts["skipped"] += 1
                else:
                    ET.SubElement(case, "error", message=r.message or "not checked")
                    counts["errors"] += 1
                continue
            if check["report"] is None:
                case = ET.SubElement(suite, "testcase", classname=f"wherry.fleet.{r.place}", name=bundle)
                ET.SubElement(case, "error", message=check["message"] or f"exit {check['exit_code']}")
                counts["errors"] += 1
                continue
            for artifact in check["report"]["artifacts"]:
                case = ET.SubElement(suite, "testcase", classname=f"wherry.fleet.{r.place}",
                                     name=f"{bundle}::{artifact['file']}", time=f"{artifact.get('seconds', 0):.4f}")
                status = artifact["status"]
                if status in ("not verifiable here", "not representable"):
                    ET.SubElement(case, "skipped", message=f"{status}: {artifact.get('reason', '')}")
                    counts["skipped"] += 1
                elif status != "passed":
                    reasons = [o.get("reason") for o in artifact.get("outputs", []) if o.get("reason")]
                    ET.SubElement(case, "failure", message="; ".join(reasons) or artifact.get("reason") or status)
                    counts["failures"] += 1
        suite.set("tests", str(len(suite)))
        for key, value in counts.items():
            suite.set(key, str(value))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
