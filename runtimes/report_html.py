"""One self-contained HTML page per bundle: what `check --html` (and `wherry debug --html`) writes.

Static and offline: no script, no network, every figure inline (SVG for histograms and the graph
excerpt, a base64 PNG for error maps). Only numpy and the standard library, so a board can write it too.
Sections: verdict table, per-output error histograms, error maps of image-shaped outputs, the
quantization table of the bundle's report.json, the first-divergence table of a debug run with a graph
excerpt around the culprit, tool versions and the device.
"""
from __future__ import annotations

import base64
import datetime
import html
import json
import math
import os
import struct
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .checker import FAILED, PASSED, UNVERIFIABLE
from .vocabulary import BUNDLE_VERDICTS, Verdict
from .device import phrase

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    from .checker import CheckReport
    from .quant_table import QuantSection

# The pages read JSON documents as their producers write them: a check (CheckReport.to_json()), a debug run
# (convert/debug's DebugReport.to_json()), a manifest's tools, a device description.
Json = Mapping[str, Any]

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#1d232b;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde3ea;padding-bottom:4px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}th,td{border:1px solid #d5dbe2;padding:4px 8px;text-align:left}
th{background:#eef2f6}.pass{background:#d9f2dc;color:#0f5c1d;font-weight:600}
.fail{background:#fbd9d7;color:#8c1b13;font-weight:600}.muted{color:#66707c}.skip{background:#f3efd9}
.fig{display:inline-block;margin:0 16px 12px 0;vertical-align:top}.fig figcaption{font-size:12px;color:#445}
img{border:1px solid #c9d1db}code{background:#f2f4f7;padding:0 3px;border-radius:3px}pre{white-space:pre-wrap;word-break:break-all}
"""


def escape(value: object) -> str:
    """Text for HTML (element content and quoted attributes): every name, path and message goes through it."""
    return html.escape(str(value))


_e = escape   # short form for the many f-strings below


def page(title: str, body: str) -> str:
    """The frame every wherry page shares (the bundle pages here, the zoo's matrix page): one look, no script."""
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<style>{_CSS}</style></head><body>{body}</body></html>\n')


def _num(value: Union[None, str, float], spec: str = ".3g") -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return f"{value:{spec}}" if math.isfinite(value) else str(value)


# ----------------------------------------------------------------------------- figures

def error_range(errors_list: Sequence[ArrayLike]) -> Tuple[int, int]:
    """One log10 x-range (whole decades) covering every panel's non-zero errors (and tolerance limits), so
    the histograms of a page can be compared at a glance."""
    values = [np.asarray(e, np.float64).ravel() for e in errors_list]
    nonzero = np.concatenate([v[np.isfinite(v) & (v > 0)] for v in values]) if values else np.zeros(0)
    if nonzero.size == 0:
        return -9, 1
    lo, hi = math.floor(np.log10(nonzero.min())), math.ceil(np.log10(nonzero.max()))
    return lo, max(hi, lo + 1)


def histogram_svg(errors: NDArray[Any], width: int = 320, height: int = 140, x_range: Optional[Tuple[int, int]] = None,
                  limit: Optional[float] = None) -> str:
    """Histogram of |artifact - golden| on a log10 axis (exact matches counted apart). ``x_range`` (decades,
    from ``error_range``) shares one axis across panels; ``limit`` (the output's tolerance, atol + rtol x
    scale) is drawn as a dashed red line: bars right of it are errors over tolerance."""
    errors = np.asarray(errors, np.float64).ravel()
    errors = errors[np.isfinite(errors)]
    exact = int((errors == 0).sum())
    nonzero = errors[errors > 0]
    lo, hi = x_range or error_range([errors] + ([np.array([limit])] if limit else []))
    bins = np.linspace(lo, hi, 31)
    logs = np.clip(np.log10(nonzero), lo, hi) if nonzero.size else nonzero
    counts = np.histogram(logs, bins=bins)[0] if nonzero.size else np.zeros(30, int)
    top = max(int(counts.max()) if counts.size else 0, 1)
    bar_w = (width - 40) / len(counts)

    def x_of(decade: float) -> float:
        return 30 + (decade - lo) / (hi - lo) * (width - 40)
    bars = "".join(f'<rect x="{30 + i * bar_w:.1f}" y="{height - 24 - (c / top) * (height - 40):.1f}" '
                   f'width="{bar_w - 1:.1f}" height="{(c / top) * (height - 40):.1f}" fill="#3b7dd8"/>'
                   for i, c in enumerate(counts))
    ticks = "".join(f'<text x="{x_of(t):.1f}" y="{height - 8}" font-size="10" '
                    f'text-anchor="middle">1e{t}</text>' for t in range(lo, hi + 1, max(1, (hi - lo) // 5)))
    line = ""
    if limit and limit > 0 and lo <= math.log10(limit) <= hi:
        x = x_of(math.log10(limit))
        line = (f'<line class="tolerance" x1="{x:.1f}" y1="16" x2="{x:.1f}" y2="{height - 24}" stroke="#c0392b" '
                f'stroke-width="2" stroke-dasharray="4,3"/><text x="{x + 3 if x < width / 2 else x - 3:.1f}" y="26" '
                f'font-size="10" text-anchor="{"start" if x < width / 2 else "end"}" fill="#c0392b">'
                f'tolerance {limit:.2g}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
            f'<rect width="{width}" height="{height}" fill="#f8fafc"/>{bars}'
            f'<line x1="30" y1="{height - 24}" x2="{width - 10}" y2="{height - 24}" stroke="#888"/>{ticks}{line}'
            f'<text x="30" y="12" font-size="10">max {top} / bin; {exact} exact of {errors.size}</text></svg>')


def _png(rgb: NDArray[Any]) -> bytes:
    """A minimal PNG encoder (8-bit RGB), so no imaging library is needed on a board."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def image_shaped(shape: Sequence[int]) -> bool:
    """N x C x H x W (or C x H x W) with a real spatial extent: an error map is worth drawing."""
    return len(shape) in (3, 4) and shape[-1] >= 4 and shape[-2] >= 4


def _heat(t: NDArray[Any]) -> NDArray[Any]:
    """0..1 -> RGB: white (0) through yellow and red to dark red (1)."""
    rgb: NDArray[Any] = np.stack([255 - 100 * t, 255 * (1 - t) ** 1.5, 255 * (1 - t) ** 2], axis=-1).clip(0, 255)
    return rgb


def error_map_png(golden: NDArray[Any], actual: NDArray[Any], size: int = 192) -> str:
    """Mean |error| over channels of the first sample, as a heat map (white = 0, dark red = the largest
    error); data URI. ``error_map`` adds its colour scale."""
    g, a = np.asarray(golden, np.float64), np.asarray(actual, np.float64).reshape(np.shape(golden))
    err = np.abs(a - g)
    err = err[0] if err.ndim == 4 else err
    err = np.nan_to_num(err.mean(axis=0), nan=0.0, posinf=0.0)
    peak = err.max() or 1.0
    t = err / peak
    scale = max(1, size // max(t.shape))
    t = np.kron(t, np.ones((scale, scale)))
    return "data:image/png;base64," + base64.b64encode(_png(_heat(t))).decode()


def error_map(golden: NDArray[Any], actual: NDArray[Any]) -> str:
    """The heat map with its colour scale (0 to the largest mean error); an exact output says so in the
    map itself rather than showing a blank box."""
    g, a = np.asarray(golden, np.float64), np.asarray(actual, np.float64).reshape(np.shape(golden))
    err = np.abs(a - g)
    err = err[0] if err.ndim == 4 else err
    peak = float(np.nan_to_num(err.mean(axis=0), nan=0.0, posinf=0.0).max())
    if peak == 0.0:
        return ('<div class="exactmap" style="width:192px;height:120px;display:flex;align-items:center;'
                'justify-content:center;background:#d9f2dc;border:1px solid #8fbf96;color:#1b5e20">'
                'exact: every value equal</div>')
    ramp = np.linspace(0, 1, 160)[None, :].repeat(10, axis=0)
    bar = "data:image/png;base64," + base64.b64encode(_png(_heat(ramp))).decode()
    return (f'<img alt="error map" src="{error_map_png(golden, actual)}"/><div class="scale" style="font-size:11px">'
            f'<img alt="colour scale" src="{bar}" style="vertical-align:middle"/> 0 &#8211; {peak:.3g}'
            f' (mean |error|)</div>')


def _fit(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[:chars - 1] + "\u2026"


def graph_svg(excerpt: Mapping[str, Sequence[Json]]) -> str:
    """before ops -> culprit -> after ops, as boxes in three columns; each box holds the op (type and
    index) on one line and the tensor it writes on the next, shortened with an ellipsis only past the box's
    width (the full label is the box's tooltip)."""
    cols = [excerpt.get("before", []), excerpt.get("culprit", []), excerpt.get("after", [])]
    rows = max(1, *(len(c) for c in cols))
    box_w, box_h, gap = 250, 40, 12
    width, height = 3 * box_w + 120, rows * (box_h + gap) + gap
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    centres: List[List[Tuple[int, float]]] = []
    for c, ops in enumerate(cols):
        x = 10 + c * (box_w + 50)
        col: List[Tuple[int, float]] = []
        for r, op in enumerate(ops):
            y = gap + r * (box_h + gap)
            fill, stroke = ("#fbd9d7", "#c0392b") if c == 1 else ("#eef2f6", "#8895a7")
            head, _, tensor = str(op["label"]).partition(" -> ")
            parts.append(f'<g><title>{_e(op["label"])}</title><rect x="{x}" y="{y}" width="{box_w}" '
                         f'height="{box_h}" rx="5" fill="{fill}" stroke="{stroke}"/>'
                         f'<text x="{x + 8}" y="{y + 16}" font-size="12" font-weight="bold">{_e(_fit(head, 34))}</text>'
                         f'<text x="{x + 8}" y="{y + 32}" font-size="11" font-family="monospace">'
                         f'{_e(_fit(tensor, 36))}</text></g>')
            col.append((x, y + box_h / 2))
        centres.append(col)
    for (x1, y1) in centres[0]:
        for (x2, y2) in centres[1]:
            parts.append(f'<line x1="{x1 + box_w}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#555" marker-end="url(#a)"/>')
    for (x1, y1) in centres[1]:
        for (x2, y2) in centres[2]:
            parts.append(f'<line x1="{x1 + box_w}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#555"/>')
    return "".join(parts) + "</svg>"


def _error_ratio(parity: Optional[Json]) -> Optional[float]:
    """An op's worst output error over its tolerance limit (1 = on the line), None where not judged."""
    if not parity or parity.get("max_abs") in (None, "nan"):
        return None
    limit = parity.get("limit")
    try:
        max_abs, limit = float(parity["max_abs"]), float(limit) if limit is not None else None
    except (TypeError, ValueError):
        return None
    if not limit or not math.isfinite(limit) or limit <= 0:
        return None
    return max_abs / limit


def _op_name(op: Dict[str, Any]) -> str:
    """"conv2d #12", or for an op of a control-flow sub-block "tanh #23 (block 2 of conditional_block #7)"."""
    return f'{op["type"]} #{op["index"]}' + (f' ({op["where"]})' if op.get("where") else "")


def depth_svg(art: Json, width: int = 640, height: int = 180) -> str:
    """Error versus depth: each compared op in execution order (x) against its worst output's error over
    the tolerance limit (y, log scale), the tolerance line at 1 and the first divergence marked. Exact
    outputs sit on the floor of the axis."""
    points = []
    for n, op in enumerate(art.get("ops", [])):
        ratios = [(r, t["parity"].get("verdict") == "passed") for t in op.get("outputs", [])
                  for r in [_error_ratio(t.get("parity"))] if r is not None]
        if ratios:
            worst = max(ratios, key=lambda x: x[0])
            points.append((n, op, worst[0], worst[1] and all(ok for _, ok in ratios)))
    if not points:
        return ""
    floor = 1e-6
    values = [max(r, floor) for _, _, r, _ in points]
    lo, hi = math.floor(math.log10(min(values))), max(1, math.ceil(math.log10(max(values))))
    lo = min(lo, -1)
    left, right, top, bottom = 46, 12, 14, 30
    span_x = max(len(art.get("ops", [])) - 1, 1)

    def x_of(n: int) -> float:
        return left + n / span_x * (width - left - right)

    def y_of(value: float) -> float:
        return top + (hi - math.log10(max(value, floor))) / (hi - lo) * (height - top - bottom)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'class="depth"><rect width="{width}" height="{height}" fill="#f8fafc"/>']
    for t in range(lo, hi + 1):
        parts.append(f'<line x1="{left}" y1="{y_of(10.0 ** t):.1f}" x2="{width - right}" y2="{y_of(10.0 ** t):.1f}" '
                     f'stroke="#e2e8f0"/><text x="{left - 4}" y="{y_of(10.0 ** t) + 3:.1f}" font-size="10" '
                     f'text-anchor="end">1e{t}</text>')
    parts.append(f'<line x1="{left}" y1="{y_of(1.0):.1f}" x2="{width - right}" y2="{y_of(1.0):.1f}" '
                 f'stroke="#c0392b" stroke-dasharray="5,3"/><text x="{width - right}" y="{y_of(1.0) - 4:.1f}" '
                 'font-size="10" text-anchor="end" fill="#c0392b">tolerance</text>')
    first = art.get("first_divergence")
    path = " ".join(f"{x_of(n):.1f},{y_of(r):.1f}" for n, _, r, _ in points)
    parts.append(f'<polyline points="{path}" fill="none" stroke="#94a3b8"/>')
    for n, op, r, ok in points:
        parts.append(f'<circle cx="{x_of(n):.1f}" cy="{y_of(r):.1f}" r="3" fill="{"#2e7d32" if ok else "#c0392b"}">'
                     f'<title>{_e(_op_name(op))}: error {r:.3g} x tolerance</title></circle>')
        if first and op["index"] == first["index"]:
            parts.append(f'<line x1="{x_of(n):.1f}" y1="{top}" x2="{x_of(n):.1f}" y2="{height - bottom}" '
                         f'stroke="#c0392b" stroke-width="2"/><text x="{x_of(n) + 4:.1f}" y="{top + 10}" '
                         f'font-size="11" fill="#c0392b">first divergence: {_e(_op_name(op))}</text>')
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="10">op 1</text>'
                 f'<text x="{width - right}" y="{height - 8}" font-size="10" text-anchor="end">'
                 f'op {len(art.get("ops", []))} (execution order; y: max abs error / tolerance limit)</text>')
    return "".join(parts) + "</svg>"


# ----------------------------------------------------------------------------- sections

def _verdict_class(status: str) -> str:
    return {"passed": "pass", "failed": "fail", "no divergence": "pass", "diverged": "fail"}.get(status, "skip")


def _verdict_section(check: Json, with_debug_commands: bool = True) -> str:
    rows = ["<tr><th>artifact</th><th>format</th><th>precision</th><th>size</th><th>max abs err</th>"
            "<th>min cosine</th><th>min SNR (dB)</th><th>verdict</th><th>reason</th></tr>"]
    for art in check.get("artifacts", []):
        outs = art.get("outputs", [])
        errs = [o["max_abs"] for o in outs if isinstance(o.get("max_abs"), (int, float))]
        coss = [o["cosine"] for o in outs if isinstance(o.get("cosine"), (int, float))]
        snrs = [float(o["snr_db"]) for o in outs if o.get("snr_db") is not None]
        rows.append(f'<tr><td><code>{_e(art["file"])}</code></td><td>{_e(art["format"])}</td>'
                    f'<td>{_e(art["precision"])}</td><td>{art.get("size", 0) / 1024:.1f} KB</td>'
                    f'<td>{_num(max(errs) if errs else None)}</td><td>{_num(min(coss) if coss else None, ".6f")}</td>'
                    f'<td>{_num(min(snrs) if snrs else None, ".1f")}</td>'
                    f'<td class="{_verdict_class(art["status"])}">{_e(art["status"])}</td>'
                    f'<td class="muted">{_e(art.get("reason", ""))[:300]}</td></tr>')
    arts = check.get("artifacts", [])
    ran = [a for a in arts if a.get("status") in (PASSED, FAILED)]
    idle = [a["file"] for a in arts if a.get("status") == UNVERIFIABLE]
    where = phrase(check.get("device") or {})
    said = (f'<p>{len(ran)} of {len(arts)} artifacts ran on this device ({_e(where)})'
            + (f'; not run here, so not verified: {", ".join(f"<code>{_e(f)}</code>" for f in idle)}' if idle else "")
            + "</p>")
    commands = [(a["file"], a["debug_command"]) for a in arts if a.get("debug_command")]
    hints = "".join(f'<p><code>{_e(file)}</code> failed; to find the first layer where it leaves the original model, '
                    f'run:</p><pre><code>{_e(command)}</code></pre>' for file, command in commands)
    return "<h2>Verdicts</h2>" + said + "<table>" + "".join(rows) + "</table>" + (hints if with_debug_commands else "")


def _limits(check: Optional[Json]) -> Dict[Tuple[str, str], float]:
    """(artifact file, output name) -> its tolerance limit (atol + rtol x scale), from a check's JSON."""
    found: Dict[Tuple[str, str], float] = {}
    for art in (check or {}).get("artifacts", []):
        for out in art.get("outputs", []):
            limit = out.get("limit")
            if isinstance(limit, (int, float)) and math.isfinite(limit) and limit > 0:
                found[(art["file"], out["name"])] = float(limit)
    return found


def _figures_section(golden: Mapping[str, NDArray[Any]], actual: Mapping[str, Mapping[str, NDArray[Any]]],
                     check: Optional[Json] = None) -> str:
    parts = ["<h2>Error distribution per output</h2>"]
    limits = _limits(check)
    panels: List[Tuple[str, str, NDArray[Any], Optional[float]]] = []
    maps: List[str] = []
    for file, outputs in actual.items():
        for name, value in outputs.items():
            if name not in golden or np.size(value) != np.size(golden[name]) or \
                    np.asarray(golden[name]).dtype.kind not in "biuf":
                continue
            g = np.asarray(golden[name], np.float64)
            a = np.asarray(value, np.float64).reshape(g.shape)
            panels.append((file, name, np.abs(a - g), limits.get((file, name))))
            if image_shaped(g.shape):
                maps.append(f'<figure class="fig">{error_map(g, a)}<figcaption>'
                            f'<code>{_e(file)}</code> <code>{_e(name)}</code>: mean |error| over channels, sample 0'
                            f'</figcaption></figure>')
    # one x axis for every panel: the errors and the tolerance lines of all of them
    shared = error_range([p[2] for p in panels] + [np.array([p[3]]) for p in panels if p[3]])
    for file, name, errors, limit in panels:
        parts.append(f'<figure class="fig">{histogram_svg(errors, x_range=shared, limit=limit)}<figcaption>'
                     f'<code>{_e(file)}</code> output <code>{_e(name)}</code>: |error| histogram'
                     f'{"" if limit else " (no tolerance recorded)"}</figcaption></figure>')
    if maps:
        parts.append("<h2>Error maps (image-shaped outputs)</h2>" + "".join(maps))
    return "".join(parts)


def _quantization_section(quant: Optional[QuantSection]) -> str:
    from .quant_table import header, rows as table_rows

    if not quant or not quant.get("rows"):
        return ""
    rows = ["<tr>" + "".join(f"<th>{_e(k)}</th>" for k in header(quant)) + "</tr>"]
    rows += ["<tr>" + "".join(f"<td>{_e(c)}</td>" for c in cells) + "</tr>" for cells in table_rows(quant)]
    notes = "".join(f"<li>{_e(n)}</li>" for n in quant.get("notes", []))
    return "<h2>Quantization</h2><table>" + "".join(rows) + "</table>" + (f"<ul>{notes}</ul>" if notes else "")


def _metric_cells(parity: Optional[Json]) -> str:
    if parity is None:
        return '<td colspan="4" class="muted">not matched in the artifact</td>'
    cls = "pass" if parity.get("verdict") == "passed" else "fail"
    return (f'<td>{_num(parity.get("max_abs"))}</td><td>{_num(parity.get("cosine"), ".6f")}</td>'
            f'<td>{_num(parity.get("snr_db"), ".1f")}</td><td class="{cls}">{_e(parity.get("verdict"))}</td>')


def _damage_table(art: Json, top: int = 8) -> str:
    """A quantized artifact's per-layer damage: the layers with the lowest SNR against the float model's
    same layer (debug's ranked ``damage`` list; older reports: ranked here from ``ops``)."""
    def snr(op: Json) -> float:
        values = [float(t["parity"]["snr_db"]) for t in op["outputs"] if t.get("parity") and
                  t["parity"].get("snr_db") is not None]
        return min(values) if values else math.inf
    rows = ["<tr><th>rank</th><th>layer (Paddle op)</th><th>artifact node</th><th>tensor</th><th>max abs</th>"
            "<th>cosine</th><th>SNR (dB)</th><th>verdict</th></tr>"]
    by_index = {op["index"]: op for op in art["ops"]}
    ranked = art.get("damage") or [{"index": op["index"]} for op in sorted(art["ops"], key=snr)]
    for rank, entry in enumerate(ranked[:top], 1):
        op = by_index[entry["index"]]
        t = next((o for o in op["outputs"] if o["name"] == entry.get("tensor")), op["outputs"][0])
        rows.append(f'<tr><td>{rank}</td><td>{_e(_op_name(op))}</td><td>{_e(op["artifact_node"])}</td>'
                    f'<td><code>{_e(t["name"])}</code></td>{_metric_cells(t.get("parity"))}</tr>')
    return (f'<p><code>{_e(art["file"])}</code>: per-layer damage against the float model\'s same layer '
            f'(lowest SNR first; {len(ranked)} layers, all in the JSON\'s <code>damage</code>)</p><table>'
            + "".join(rows) + "</table>")


def _debug_section(debug: Json) -> str:
    parts = ["<h2>First divergence (wherry debug)</h2>"]
    parts += [f'<p class="muted">{_e(n)}</p>' for n in debug.get("reference_notes", [])]
    for art in debug.get("artifacts", []):
        first = art.get("first_divergence")
        head = f'<code>{_e(art["file"])}</code> ({_e(art["precision"])}): '
        if art["precision"] != "fp32" and art.get("ops"):
            parts.append(_damage_table(art))
        if art["status"] != "diverged" or not first:
            parts.append(f'<p>{head}<span class="{_verdict_class(art["status"])}">{_e(art["status"])}</span> '
                         f'{_e(art.get("reason", ""))} ({len(art.get("ops", []))} ops compared)</p>')
            parts.append(depth_svg(art))
            continue
        parts.append(f'<p>{head}<span class="fail">first diverging op: {_e(_op_name(first))}</span> '
                     f'(artifact: {_e(first["artifact_node"])})</p>')
        rows = ["<tr><th>role</th><th>Paddle tensor</th><th>artifact tensor</th><th>max abs</th><th>cosine</th>"
                "<th>SNR (dB)</th><th>verdict</th></tr>"]
        for role in ("inputs", "outputs"):
            for t in first.get(role, []):
                cells = ('<td colspan="4" class="muted">model input (same on both sides)</td>'
                         if t.get("matched_by") == "feed" else _metric_cells(t.get("parity")))
                rows.append(f'<tr><td>{role[:-1]}</td><td><code>{_e(t["name"])}</code></td>'
                            f'<td><code>{_e(t.get("artifact_name") or "-")}</code></td>{cells}</tr>')
        parts.append("<table>" + "".join(rows) + "</table>")
        parts.append(depth_svg(art))
        attrs = ", ".join(f"{k}={v!r}" for k, v in list(first.get("attrs", {}).items())[:10])
        if attrs:
            parts.append(f'<p class="muted">attributes in the reference program: {_e(attrs)}</p>')
        parts.append(graph_svg(art.get("graph_excerpt", {})))
        if art.get("unmatched"):
            parts.append(f'<p class="muted">{len(art["unmatched"])} tensor(s) not matched: '
                         f'{_e(", ".join(art["unmatched"][:12]))}</p>')
    return "".join(parts)


def _environment_section(tools: Mapping[str, object], device: Mapping[str, object]) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in tools.items() if v is not None)
    dev = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in device.items()
                  if isinstance(v, (str, int, float)))
    return (f'<h2>Tools and device</h2><div class="fig"><table><tr><th>tool (at conversion)</th><th>version</th>'
            f'</tr>{rows}</table></div><div class="fig"><table><tr><th>device</th><th></th></tr>{dev}</table></div>')


def render(name: str, bundle_dir: Path, check: Optional[Json] = None, debug: Optional[Json] = None,
           golden: Optional[Mapping[str, NDArray[Any]]] = None,
           actual: Optional[Mapping[str, Mapping[str, NDArray[Any]]]] = None,
           tools: Optional[Mapping[str, object]] = None, device: Optional[Mapping[str, object]] = None) -> str:
    quant: Optional[QuantSection] = None
    report_file = Path(bundle_dir) / "report.json"
    if report_file.is_file():
        try:
            quant = json.loads(report_file.read_text()).get("quantization")
        except ValueError:
            quant = None
    if check is not None:
        # reports written before "verdict" existed: ok was all they said
        word = check.get("verdict") or ("passed" if check.get("ok") else "failed")
        verdict = Verdict(word).label if word in BUNDLE_VERDICTS else "FAIL"
    else:
        verdict = "DIVERGED" if debug and debug.get("diverged") else "NO DIVERGENCE"
    cls = {"PASS": "pass", "NO DIVERGENCE": "pass", "PARTLY VERIFIED": "skip", "NOT VERIFIED": "skip"}.get(verdict, "fail")
    body = [f'<h1>wherry parity report: {_e(name)} <span class="{cls}">&nbsp;{verdict}&nbsp;</span></h1>',
            f'<p class="muted">bundle <code>{_e(bundle_dir)}</code>, written '
            f'{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}</p>']
    if check is not None:
        body.append(_verdict_section(check, with_debug_commands=debug is None))
    if debug is not None:
        body.append(_debug_section(debug))
    body.append(_quantization_section(quant))
    if golden is not None and actual:
        body.append(_figures_section(golden, actual, check))
    body.append(_environment_section(tools or {}, device or {}))
    return page(f"wherry: {name}", "".join(body))


def write_check_html(path: Union[str, os.PathLike[str]], bundle_dir: Union[str, os.PathLike[str]],
                     check_report: CheckReport, debug: Optional[Json] = None, check_json: Optional[Json] = None) -> Path:
    """The page for a CheckReport (whose results keep the artifacts' outputs) and optionally a debug run;
    `check_json` replaces the report's own JSON in the tables (the zoo adds the emulated board's verdicts)."""
    from .bundle import load_bundle
    from .checker import golden_data

    bundle = load_bundle(bundle_dir)
    _, golden = golden_data(bundle)
    actual: Dict[str, Dict[str, NDArray[Any]]] = {r.file: r.actual for r in check_report.results if r.actual}
    text = render(bundle.manifest.name, Path(bundle_dir), check_json or check_report.to_json(), debug, golden, actual,
                  bundle.manifest.tools, check_report.device)
    Path(path).write_text(text)
    return Path(path)
