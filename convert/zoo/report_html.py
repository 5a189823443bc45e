"""The zoo's HTML pages: the matrix page of ``wherry zoo --html FILE`` and each bundle's check page.

Matrix page: one row per model, one column per target. A cell shows its status (a link to the
bundle's check page when it has one), one line per artifact (verdict, worst max abs error and lowest
cosine over its outputs, read from the bundle's report.json), the wall time of the task that made it
and that task's peak memory. Under the matrix: the summary line, the reason of every failed, errored
or crashed cell, and the tool versions.

Check page: ``CHECK_PAGE`` inside every verified bundle, written by the worker right after the
conversion from the verification it just ran (the outputs compared are still in memory, so the
histograms and error maps cost no extra run), with the emulated board's verdicts for ARM .nb files
run there. Being a file of the bundle, it goes into the cache with it and comes back from a Ray node
with it.

Both pages are static like every wherry page (runtimes/report_html.py: one frame, one stylesheet,
one escaping function); everything that comes from a zoo file, a path or an error goes through it.
"""
from __future__ import annotations

import datetime
import json
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional
from urllib.parse import quote

from wherry.runtimes.checker import FAILED, NOT_BUILT, PASSED
from wherry.runtimes.report_html import escape, page

from .report import SHORT, debug_commands, located, summary_line
from .runner import Cell, ZooRun

log = logging.getLogger(__name__)

CHECK_PAGE = "check.html"
BAD = ("failed", "error", "crashed")


# ----------------------------------------------------------------------------- each bundle's check page

def write_check_page(bundle) -> Optional[Path]:
    """Write CHECK_PAGE into a bundle `convert` just made (a ConvertedBundle); None without a verification."""
    if bundle.check is None:
        return None
    from wherry.runtimes.report_html import write_check_html

    path = Path(bundle.path) / CHECK_PAGE
    try:
        return write_check_html(path, bundle.path, bundle.check)   # the board's verdicts are in the check
    except Exception as exc:  # noqa: BLE001 - the page only illustrates verdicts that stand without it
        log.warning("%s: check page not written: %s", bundle.path, exc)
        return None


# ----------------------------------------------------------------------------- the matrix page

def _report_json(cell: Cell) -> dict:
    path = (cell.bundle or {}).get("path")
    try:
        return json.loads((Path(path) / "report.json").read_text()) if path else {}
    except (OSError, ValueError):
        return {}


def _worst(outputs: list) -> tuple:
    errs = [o["max_abs"] for o in outputs if isinstance(o.get("max_abs"), (int, float))]
    coss = [o["cosine"] for o in outputs if isinstance(o.get("cosine"), (int, float))]
    return (max(errs) if errs else None), (min(coss) if coss else None)


def artifact_rows(cell: Cell) -> List[dict]:
    """One row per artifact of the cell's bundle: verdict (board verdict where the board ran it), worst
    max abs error, lowest cosine, and the reason when it did not pass."""
    report = _report_json(cell)
    host = {a["file"]: a for a in (report.get("verification") or {}).get("artifacts", [])}
    board = report.get("emulated_verification") or {}
    rows = []
    for art in (cell.bundle or {}).get("artifacts", []):
        verdict, result = art["verdict"], host.get(art["file"], {})
        if art.get("board_verdict") in (PASSED, FAILED):   # run on the emulated board: its figures
            verdict, result = f"board {art['board_verdict']}", board.get(art["file"], {})
        max_abs, cosine = _worst(result.get("outputs", []))
        failed = verdict in (FAILED, NOT_BUILT, f"board {FAILED}")
        reason = art.get("reason") or result.get("reason") or ""
        rows.append({"file": art["file"], "kind": f"{art['precision']} {art['format']}",
                     "verdict": SHORT.get(verdict, verdict), "max_abs": max_abs, "cosine": cosine,
                     "class": "fail" if failed else "pass" if verdict in (PASSED, f"board {PASSED}") else "skip",
                     "reason": reason if failed else ""})
    return rows


def _status_class(status: str) -> str:
    return "pass" if status == "passed" else "fail" if status in BAD else "skip"


def _link(cell: Cell, page_dir: Path) -> Optional[str]:
    bundle = (cell.bundle or {}).get("path")
    if not bundle or not (Path(bundle) / CHECK_PAGE).is_file():
        return None
    return quote(os.path.relpath(Path(bundle).resolve() / CHECK_PAGE, page_dir.resolve()))


def _figures(row: dict) -> str:
    parts = []
    if row["max_abs"] is not None:
        parts.append(f"max abs {row['max_abs']:.2g}")
    if row["cosine"] is not None:
        parts.append(f"cos {row['cosine']:.6f}")
    return f' <span class="muted">{escape(", ".join(parts))}</span>' if parts else ""


def _cell_html(cell: Optional[Cell], page_dir: Path) -> str:
    if cell is None:
        return '<td class="muted">not in the zoo</td>'
    status = f'<span class="{_status_class(cell.status)}">&nbsp;{escape(cell.status)}&nbsp;</span>'
    link = _link(cell, page_dir)
    if link:
        status = f'<a href="{escape(link)}" title="this bundle\'s check page">{status}</a>'
    lines = [status + (' <span class="muted">cached</span>' if cell.cached else "")]
    for row in artifact_rows(cell):
        lines.append(f'<code>{escape(row["file"])}</code> <span class="muted">{escape(row["kind"])}</span> '
                     f'<span class="{row["class"]}">{escape(row["verdict"])}</span>{_figures(row)}')
    if cell.error:
        lines.append(f'<span class="muted">{escape(cell.error.get("message", "")[:160])}</span>')
    seconds = f"{cell.task_seconds:.1f} s" if cell.task_seconds else "-"
    memory = f"{cell.peak_rss_bytes / (1 << 20):.0f} MB" if cell.peak_rss_bytes else "-"
    lines.append(f'<span class="muted">time {seconds}{" (first run)" if cell.cached else ""}, '
                 f'peak memory {memory}</span>')
    return '<td style="vertical-align:top">' + "<br>".join(lines) + "</td>"


def _failures(cells: List[Cell]) -> str:
    items = []
    for cell in cells:
        if cell.status not in BAD:
            continue
        head = (f'<b>{escape(cell.model)}</b> × <b>{escape(cell.target)}</b>: '
                f'<span class="fail">&nbsp;{escape(cell.status)}&nbsp;</span> ')
        if cell.error:
            hint = f' <span class="muted">(hint: {escape(cell.error["hint"])})</span>' if cell.error.get("hint") else ""
            items.append(f"<li>{head}{escape(cell.error.get('message', ''))}{hint}</li>")
        else:
            commands, found = dict(debug_commands(cell)), dict(located(cell))
            why = "".join(f'<li><code>{escape(r["file"])}</code>: {escape(r["verdict"])}'
                          f'{": " + escape(r["reason"]) if r["reason"] else ""}'
                          + (f'<br>located: {escape(found[r["file"]])}' if r["file"] in found else "")
                          + (f'<br>find its first diverging layer: <code>{escape(commands[r["file"]])}</code>'
                             if r["file"] in commands else "") + '</li>'
                          for r in artifact_rows(cell) if r["class"] == "fail")
            items.append(f"<li>{head}<ul>{why}</ul></li>")
    return f'<h2>Why cells failed</h2><ul>{"".join(items)}</ul>' if items else ""


def _tools() -> str:
    from .cache import tool_versions

    rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in tool_versions() if v is not None)
    return f'<h2>Tools</h2><table><tr><th>tool (this machine)</th><th>version</th></tr>{rows}</table>'


def matrix_page(run: ZooRun, page_file: Path) -> str:
    """The zoo's matrix as one static page; links to the bundles' check pages are relative to `page_file`."""
    page_dir = Path(page_file).parent
    models = list(dict.fromkeys(c.model for c in run.cells))
    targets = list(dict.fromkeys(c.target for c in run.cells))
    cells: Dict[tuple, Cell] = {(c.model, c.target): c for c in run.cells}
    verdict, cls = ("PASS", "pass") if run.ok else ("FAIL", "fail")
    head = "<tr><th>model</th>" + "".join(f"<th>{escape(t)}</th>" for t in targets) + "</tr>"
    rows = "".join(f"<tr><th>{escape(m)}</th>" + "".join(_cell_html(cells.get((m, t)), page_dir) for t in targets)
                   + "</tr>" for m in models)
    written = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    body = (f'<h1>wherry zoo: {escape(run.zoo.path.name)} <span class="{cls}">&nbsp;{verdict}&nbsp;</span></h1>'
            f'<p class="muted">zoo file <code>{escape(run.zoo.path)}</code>, written {written}. A cell\'s status '
            f'links to its bundle\'s check page (verdicts, error histograms, error maps).</p>'
            f'<p>{escape(summary_line(run))}</p><h2>Matrix</h2><table>{head}{rows}</table>'
            f'{_failures(run.cells)}{_tools()}')
    return page(f"wherry zoo: {run.zoo.path.name}", body)
