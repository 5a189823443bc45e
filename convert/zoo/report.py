"""The zoo's matrix report: one row per model x target, one column per artifact kind (precision + format).

Rendered three ways from the same rows: a terminal table, JSON (schema wherry.zoo.v1) and a
Markdown table in the style of the README's support matrix.
"""
from __future__ import annotations

from typing import List, Tuple

from wherry.runtimes.text_table import table_lines
from wherry.runtimes.vocabulary import PRECISIONS, Verdict

from .runner import Cell, ZooRun

# a cell's words: the vocabulary's, plus the verdicts of the emulated board (an ARM .nb the host cannot run)
SHORT = {**{v.value: v.cell for v in Verdict}, "board passed": "pass (board)", "board failed": "FAIL (board)"}
MARK = {**{v.value: v.mark for v in Verdict}, "board passed": "✅ pass on emulated aarch64",
        "board failed": "❌ FAIL on emulated aarch64"}
KIND_ORDER = tuple(PRECISIONS)


def _kinds(cells: List[Cell]) -> List[Tuple[str, str]]:
    kinds = {(a["precision"], a["format"]) for c in cells if c.bundle for a in c.bundle["artifacts"]}
    return sorted(kinds, key=lambda k: (KIND_ORDER.index(k[0]) if k[0] in KIND_ORDER else 99, k[1]))


def _verdicts(cell: Cell) -> dict:
    """(precision, format) -> verdict; several artifacts of one kind (an nb per place set) -> the worst."""
    rank = [v.value for v in sorted(Verdict, key=lambda v: v.rank)]
    verdicts: dict = {}
    for art in (cell.bundle or {}).get("artifacts", []):
        kind, verdict = (art["precision"], art["format"]), art["verdict"]
        if art.get("board_verdict") in ("passed", "failed"):  # run on the emulated board (the host could not)
            verdict = f"board {art['board_verdict']}"
        old = verdicts.get(kind)
        verdicts[kind] = verdict if old is None or _rank(rank, verdict) < _rank(rank, old) else old
    return verdicts


def _rank(rank: list, verdict: str) -> int:
    if verdict.startswith("board "):
        return 0 if verdict == "board failed" else rank.index("passed")
    return rank.index(verdict)


def _mb(value) -> str:
    return f"{value / (1 << 20):.0f} MB" if value else "-"


def debug_commands(cell: Cell) -> List[Tuple[str, str]]:
    """(file, command) of each failed artifact of the cell: the `wherry debug` command the conversion named,
    aimed at the cell's bundle where it is now (a cached cell's bundle was restored to another path)."""
    import shlex

    path = (cell.bundle or {}).get("path")
    found = []
    for art in (cell.bundle or {}).get("artifacts", []):
        words = shlex.split(art.get("debug_command") or "")
        if len(words) > 2 and path:
            words[2] = str(path)
            found.append((art["file"], shlex.join(words)))
    return found


def located(cell: Cell) -> List[Tuple[str, str]]:
    """(file, one line) of each failed artifact the conversion searched (--locate): where it leaves the model."""
    return [(art["file"], art["located"]["summary"]) for art in (cell.bundle or {}).get("artifacts", [])
            if art.get("located")]


def _status(cell: Cell) -> str:
    return cell.status.upper() if cell.status in ("failed", "error", "crashed") else cell.status


def table(run: ZooRun) -> str:
    kinds = _kinds(run.cells)
    rows = [["model", "target", "cell"] + [f"{p} {f}" for p, f in kinds] + ["time", "peak RSS"]]
    for cell in run.cells:
        verdicts = _verdicts(cell)
        time_text = "cached" if cell.cached else (f"{cell.task_seconds:.1f} s" if cell.task_seconds else "-")
        rows.append([cell.model, cell.target, _status(cell)]
                    + [SHORT.get(verdicts[k], verdicts[k]) if k in verdicts else "-" for k in kinds]
                    + [time_text, _mb(cell.peak_rss_bytes)])
    lines = table_lines(rows)
    for cell in run.cells:
        if cell.error:
            hint = f" (hint: {cell.error['hint']})" if cell.error.get("hint") else ""
            lines.append(f"{cell.model} x {cell.target}: {cell.status}: {cell.error.get('message', '')}{hint}")
        for file, command in debug_commands(cell):
            lines.append(f"{cell.model} x {cell.target}: {file} failed; find its first diverging layer: {command}")
        for file, summary in located(cell):
            lines.append(f"{cell.model} x {cell.target}: {file}: located: {summary}")
    lines.append(summary_line(run))
    return "\n".join(lines)


def _counts(run: ZooRun) -> dict:
    counts = {s: sum(c.status == s for c in run.cells)
              for s in ("passed", "partly verified", "unverified", "failed", "error", "crashed")}
    counts.update(cells=len(run.cells), cached=sum(c.cached for c in run.cells))
    return counts


def summary_line(run: ZooRun) -> str:
    c = _counts(run)
    where = "on Ray" if run.backend == "ray" else f"-j {run.jobs}"
    return (f"{c['cells']} cells: {c['passed']} passed, {c['partly verified']} partly verified, "
            f"{c['unverified']} unverified, {c['failed']} failed, "
            f"{c['error']} errors, "
            f"{c['crashed']} crashed; {c['cached']} cached; {run.wall_s:.1f} s ({where})")


def markdown(run: ZooRun) -> str:
    kinds = _kinds(run.cells)
    head = ["model", "target"] + [f"{p} {'Lite .nb' if f == 'nb' else 'ONNX'}" for p, f in kinds] + ["peak RSS"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell in run.cells:
        verdicts = _verdicts(cell)
        if cell.status in ("error", "crashed"):
            assert cell.error is not None, "an error or a crash comes with its error (worker.py, runner.finish)"
            values = [f"❌ {cell.status}: {cell.error.get('message', '')[:80]}".replace("|", "/")] + [""] * (len(kinds) - 1)
        else:
            values = [MARK.get(verdicts[k], verdicts[k]) if k in verdicts else "" for k in kinds]
        lines.append("| " + " | ".join([cell.model, cell.target] + values + [_mb(cell.peak_rss_bytes)]) + " |")
    return "\n".join(lines) + "\n"


def to_json(run: ZooRun) -> dict:
    return {
        "ok": run.ok, "zoo": str(run.zoo.path), "backend": run.backend, "jobs": run.jobs, "wall_s": run.wall_s,
        "memory_budget_mb": round(run.memory_budget_bytes / (1 << 20)) if run.memory_budget_bytes else None,
        "summary": _counts(run),
        "cells": [{"model": c.model, "target": c.target, "status": c.status, "ok": c.ok, "cached": c.cached,
                   "task_s": c.task_seconds,
                   "peak_rss_mb": round(c.peak_rss_bytes / (1 << 20), 1) if c.peak_rss_bytes else None,
                   "bundle": (c.bundle or {}).get("path"), "arch": (c.bundle or {}).get("arch"),
                   "artifacts": (c.bundle or {}).get("artifacts", []), "warnings": (c.bundle or {}).get("warnings", []),
                   "error": c.error, "key": c.key}
                  for c in run.cells]}
