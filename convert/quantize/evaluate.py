"""What quantization costs, measured: size, host latency and task accuracy of every runnable artifact,
and the --max-drop accuracy guard for the int8 ONNX artifact."""
from __future__ import annotations

import logging
import statistics
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from wherry.runtimes import vocabulary
from wherry import runtimes
from wherry.convert.quantize import onnx_quant, tasks
from wherry.convert.quantize.calibration import batches
from wherry.runtimes.bundle import Artifact, content_hash
from wherry.runtimes.errors import InputError, WherryError
from wherry.runtimes.session import unsupported_reason

log = logging.getLogger(__name__)

EVAL_BATCH = 64
LATENCY_RUNS = 21
LATENCY_ROUNDS = 3


class AccuracyBoundError(WherryError):
    """The int8 artifact stays beyond --max-drop even with its most sensitive layers in float."""


class NotInt8Error(WherryError):
    """--max-drop kept so much in float that the "int8" artifact is no smaller than fp32."""


# An int8 artifact must be smaller than this share of the fp32 artifact's size, or it is fp32 under an
# int8 name. All-int8 ONNX is ~0.25x on real-sized models (0.40x on the 65 KB digits CNN, whose graph
# is a large share of its file); with every weight layer in float it is 1.00x (measured on the digits
# CNN). 0.9 leaves room for a few layers in float while refusing an artifact that saves next to nothing.
MAX_INT8_SIZE_RATIO = 0.9


def outputs_on(session_path: str, feeds: Dict[str, np.ndarray], **open_args: Any) -> np.ndarray:
    """First output of a model over all samples, run in batches."""
    with runtimes.open(session_path, **open_args) as session:
        first = session.outputs[0].name
        # a model with a fixed batch dimension (e.g. [1, 3, 224, 224]) takes exactly that many at a time
        fixed = [s.shape[0] for s in session.inputs if s.shape and s.shape[0] is not None]
        size = fixed[0] if fixed else EVAL_BATCH
        count = len(next(iter(feeds.values())))
        if fixed and count % size:
            raise InputError(f"{count} samples do not split into the model's fixed batch of {size}",
                             f"give a multiple of {size} samples")
        return np.concatenate([session.run(batch)[first] for batch in batches(feeds, size)])


INTEGER_PRECISIONS = tuple(p.name for p in vocabulary.PRECISIONS.values() if p.integer)


def _coverage(stage: Path, art: Artifact, known: Dict[str, dict]) -> dict:
    empty = {"quantized_layers": None, "weight_layers": None, "quantized_weights": None, "quantized_macs": None}
    if art.precision not in INTEGER_PRECISIONS:
        return empty
    if art.format == "onnx":
        return onnx_quant.coverage(stage / art.file)
    return known.get(art.file, empty)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype("float64"), b.ravel().astype("float64")
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / denom) if denom else float(np.array_equal(a, b))


def latency_ms(paths: List[str], feeds: Dict[str, np.ndarray], runs: int = LATENCY_RUNS,
               rounds: int = LATENCY_ROUNDS) -> List[float]:
    """Median latency of each model on the same feeds, in ms.

    The runs are split into rounds and the models take turns round by round, so that load from other
    processes on a shared host hits them alike and their ratios stay meaningful. Only one session is
    open at a time: ONNX Runtime's idle worker threads spin for a while after a run and would steal
    the cores from the next model's run.
    """
    times: List[List[float]] = [[] for _ in paths]
    per_round = max(1, runs // rounds)
    for _ in range(rounds):
        for path, samples in zip(paths, times):
            with runtimes.open(path) as session:
                session.run(feeds)  # warm-up: first runs allocate
                for _ in range(per_round):
                    start = time.perf_counter()
                    session.run(feeds)
                    samples.append(time.perf_counter() - start)
    return [statistics.median(t) * 1000.0 for t in times]


def board_outputs(nb_file: Path, feeds: Dict[str, np.ndarray]) -> np.ndarray:
    """First output of an ARM .nb over all samples, computed by Paddle Lite's ARM kernels on the emulated
    aarch64 board (`python -m wherry.runtimes run` there, the samples and outputs passed as .npz files)."""
    import tempfile

    from wherry.runtimes.npz import load_npz
    from wherry.targets.devices import EmulatedAarch64

    device, parts = EmulatedAarch64(), []
    with tempfile.TemporaryDirectory(prefix="wherry-board-eval-") as tmp:
        folder = Path(tmp)
        nb = folder / nb_file.name   # a file of its own: the stage's half-written manifest is no bundle yet
        nb.write_bytes(nb_file.read_bytes())
        for batch in batches(feeds, EVAL_BATCH):
            np.savez(folder / "in.npz", **batch)
            result = device.run(["run", str(nb), "--inputs", str(folder / "in.npz"), "--out", str(folder / "out.npz"),
                                 "--json"], [folder])
            if result.exit_code != 0:
                raise WherryError(f"the emulated board could not run {nb_file.name} on the --eval data: "
                                  f"{(result.stderr.strip() or result.stdout.strip()).splitlines()[-1:]}",
                                  "run `wherry check BUNDLE --device emulated-aarch64` to see why")
            parts.append(next(iter(load_npz(folder / "out.npz").values())))
    return np.concatenate(parts)


def measure(stage: Path, artifacts: List[Artifact], golden_feeds: Dict[str, np.ndarray],
            eval_data: Optional[Tuple[Dict[str, np.ndarray], tasks.Task]], reference_score: Optional[float],
            coverage: Optional[Dict[str, dict]] = None, board: bool = False):
    """One row per artifact: size and ratio to the fp32 artifact of the same format, median host latency
    and its ratio, and with eval data: the task metric (``metric``, ``score``), how much worse it is than the
    original model's (``score_drop``, positive = worse) and where it was measured (``measured_on``);
    classification adds top-1 agreement (% of eval samples whose predicted class equals the fp32
    artifact's; ONNX fp32 matches Paddle to ~1e-6) and keeps its score as ``accuracy``/``accuracy_drop``.
    With ``board`` (Paddle Lite's ARM runtime built here) the ARM .nb files are scored from the emulated
    board's outputs: the ARM kernels' task accuracy, int8 ones included.
    Integer-quantized artifacts also say how much of them really is: weight layers with integer weights
    (of all), and their share of the weights and of the multiply-accumulates (ONNX; ``coverage`` gives
    the int8 .nb files' kernel counts)."""
    fp32 = {a.format: a for a in artifacts if a.precision == "fp32"}
    feeds, task = eval_data if eval_data is not None else ({}, None)
    rows: List[Dict[str, Any]] = []
    predictions: Dict[str, np.ndarray] = {}
    for art in artifacts:
        row = {"artifact": art.file, "precision": art.precision, "size": art.size,
               "size_ratio": round(art.size / fp32[art.format].size, 3) if art.format in fp32 else None,
               "latency_ms": None, "latency_ratio": None, "metric": task.metric if task else None, "score": None,
               "score_drop": None, "measured_on": None, "accuracy": None, "accuracy_drop": None,
               "top1_agreement": None, "runs_here": unsupported_reason(art.arch, art.runtime) is None,
               **_coverage(stage, art, coverage or {})}
        on_board = board and not row["runs_here"] and art.format == "nb" and art.arch == "arm"
        # an OpenVINO IR or a .tflite: scored in its tool's environment, where its check ran (an .rknn has no
        # runtime here: the toolkit can only simulate the graph it has just built)
        edge = None if row["runs_here"] else _edge_tool(art.format)
        if task is not None and (row["runs_here"] or on_board or edge is not None):
            if on_board:
                log.info("scoring %s on the emulated aarch64 board (%d samples)", art.file, task.count)
            try:
                if edge is not None:
                    from wherry.convert import tool_env

                    log.info("scoring %s with %s (%d samples)", art.file, edge.TOOL, task.count)
                    outputs = _first_output(tool_env.outputs(edge.ENV, stage, art.file, feeds), stage)
                else:
                    outputs = (board_outputs(stage / art.file, feeds) if on_board
                               else outputs_on(str(stage / art.file), feeds))
            except WherryError as exc:
                if not (on_board or edge is not None):
                    raise
                log.warning("%s", exc.message)   # the device's own check already judged the artifact
                rows.append(row)
                continue
            row["measured_on"] = ("emulated aarch64 board" if on_board else edge.VERIFIED_ON if edge is not None
                                  else "host")
            row["score"] = round(task.score(outputs), 2)
            if reference_score is not None:
                row["score_drop"] = round(task.drop(reference_score, row["score"]), 2)
            decided = task.predictions(outputs)   # classification only
            if decided is not None:
                predictions[art.file] = decided
                row["accuracy"], row["accuracy_drop"] = row["score"], row["score_drop"]
        rows.append(row)
    runnable_fp32 = [a.file for a in fp32.values() if a.file in predictions]
    for row, art in zip(rows, artifacts):
        if art.file not in predictions or not runnable_fp32:
            continue
        same_format = fp32.get(art.format)
        base = same_format.file if same_format is not None and same_format.file in predictions else runnable_fp32[0]
        row["top1_agreement"] = round(float(np.mean(predictions[art.file] == predictions[base]) * 100.0), 2)
    runnable = [(row, art) for row, art in zip(rows, artifacts) if row["runs_here"]]
    if runnable:
        timings = latency_ms([str(stage / art.file) for _, art in runnable], golden_feeds)
        for (row, _), ms in zip(runnable, timings):
            row["latency_ms"] = round(ms, 4)
    by_file = {r["artifact"]: r for r in rows}
    for row, art in zip(rows, artifacts):
        base_row = by_file[fp32[art.format].file] if art.format in fp32 else None
        if base_row and base_row["latency_ms"] and row["latency_ms"]:
            row["latency_ratio"] = round(row["latency_ms"] / base_row["latency_ms"], 3)
    return rows


def _first_output(outputs: Dict[str, np.ndarray], stage: Path) -> np.ndarray:
    """The model's first output (the one a task scores, as ``outputs_on`` takes it), by the manifest's name."""
    import json

    declared = json.loads((stage / "manifest.json").read_text()).get("outputs") or [{}]
    return outputs.get(declared[0].get("name"), next(iter(outputs.values())))


def _edge_tool(fmt: str) -> Optional[Any]:
    """The exporter module whose tool environment runs artifacts of format ``fmt`` (OpenVINO, LiteRT); None for
    the formats wherry's own environment runs, and for those no environment here can run (.rknn)."""
    from wherry.convert import exporters

    exporter = next((e for e in exporters.derived([fmt]) if e.format == fmt), None)
    module = exporter.module if exporter is not None else None
    return None if module is None or getattr(module, "SIMULATED", None) else module


SENSITIVITY_SAMPLES = 32  # enough to rank layers; each probe re-calibrates, so fewer samples = faster guard


def guard_int8(stage: Path, artifact: Artifact, fp32_onnx: Path, calib: Dict[str, np.ndarray], max_drop: float,
               eval_data, reference_score: Optional[float], work: Path, method: str = "minmax"
               ) -> Tuple[List[str], List[str]]:
    """Keep the int8 ONNX artifact within --max-drop, leaving the most damaging layers in float.

    The bound: with labelled eval data, task metric points lost against the original model (accuracy, CER,
    box F1 or mIoU); without, the int8 outputs on the calibration samples must keep cosine >= 1 - max_drop/100 against the fp32 ONNX.
    Sensitivity is always measured on the calibration data: each quantizable layer is quantized alone and
    its output cosine loss against fp32 ranks it (finer-grained than accuracy on a small eval set).
    Layers go back to float, most damaging first, until the bound holds.
    Returns the report lines and the weights of the layers kept in float (Paddle parameter names: the int8
    .nb keeps the same layers in float); raises AccuracyBoundError when even all-float layers cannot meet it.
    """
    path = stage / artifact.file
    reference = outputs_on(str(fp32_onnx), calib)

    def cosine_loss(model: Path, feeds=calib, ref=reference) -> float:  # percent
        return (1.0 - cosine(outputs_on(str(model), feeds), ref)) * 100.0

    if eval_data is not None:
        feeds, task = eval_data

        def cost(model: Path) -> float:  # task metric points lost
            return task.drop(reference_score, task.score(outputs_on(str(model), feeds)))
        unit = f"{task.metric} points lost"
    else:
        cost, unit = cosine_loss, "% cosine loss"
    current = cost(path)
    lines = [f"int8 ONNX: {current:.4f} {unit} (bound {max_drop})"]
    if current <= max_drop:
        return lines, []
    prepared = onnx_quant.prepare(fp32_onnx, work)
    nodes = onnx_quant.quantizable_nodes(prepared)
    probe_feeds = {k: v[:SENSITIVITY_SAMPLES] for k, v in calib.items()}
    probe_ref = reference[:SENSITIVITY_SAMPLES]
    sensitivity = {}
    probe = work / "probe.onnx"
    for i, node in enumerate(nodes, 1):  # quantize one layer alone: the damage it does by itself
        log.info("sensitivity %d/%d: %s", i, len(nodes), node)
        onnx_quant.static_int8(prepared, probe, probe_feeds, only=[node], method=method)
        sensitivity[node] = cosine_loss(probe, probe_feeds, probe_ref)
    ranked = sorted(nodes, key=lambda n: -sensitivity[n])
    lines.append("layer sensitivity (% cosine loss on calibration data when quantized alone): " +
                 ", ".join(f"{n} {sensitivity[n]:.4f}" for n in ranked))
    steps = [("all-int8", current)]   # the cost after each layer went back to float, for the user
    for keep in range(1, len(ranked) + 1):
        excluded = ranked[:keep]
        onnx_quant.static_int8(prepared, path, calib, exclude=excluded, method=method)
        current = cost(path)
        steps.append((f"+{excluded[-1]} in float" if keep > 1 else f"{excluded[-1]} in float", current))
        log.info("int8 with %s in float: %.4f %s", excluded, current, unit)
        if current <= max_drop:
            _refuse_if_not_smaller(path, fp32_onnx, excluded, ranked, max_drop, steps, unit)
            artifact.size, artifact.sha256 = path.stat().st_size, content_hash(path)
            artifact.notes[:] = [onnx_quant.int8_note(path) if n.endswith(onnx_quant.INT8_NOTE_END) else n
                                 for n in artifact.notes]
            note = f"kept in float to meet --max-drop {max_drop}: {', '.join(excluded)}"
            artifact.notes.append(note)
            lines += [note, f"int8 ONNX now: {current:.4f} {unit}"]
            return lines, onnx_quant.weight_names(fp32_onnx, excluded)
    raise AccuracyBoundError(f"the int8 ONNX artifact loses {current:.4f} {unit} even with every quantized layer "
                             f"in float; --max-drop {max_drop} cannot be met",
                             "raise --max-drop, give more representative --calib data, or use int8-weight/fp16")


def _refuse_if_not_smaller(path: Path, fp32_onnx: Path, excluded: List[str], ranked: List[str], max_drop: float,
                           steps: List[Tuple[str, float]], unit: str) -> None:
    """An "int8" artifact that keeps so much in float that it is no smaller than fp32 is not shipped as int8."""
    ratio = path.stat().st_size / fp32_onnx.stat().st_size
    if ratio <= MAX_INT8_SIZE_RATIO:
        return
    share = onnx_quant.coverage(path)
    weights = share["quantized_weights"]
    raise NotInt8Error(
        f"--max-drop {max_drop} keeps {len(excluded)} of {len(ranked)} weight layers in float "
        f"({', '.join(excluded)}; {'?' if weights is None else f'{weights:.0%}'} of the weights stay int8): "
        f"model.int8.onnx would be {ratio:.2f}x the size of model.onnx (an int8 artifact must be under "
        f"{MAX_INT8_SIZE_RATIO}x), an fp32 model under an int8 name; not shipped",
        f"measured {unit}: " + ", ".join(f"{what} {cost:.4f}" for what, cost in steps) + "; raise --max-drop to "
        "a bound that keeps fewer layers in float, give more representative --calib data, or ask for int8-weight "
        "(int8 weights, float math: near-float accuracy, ~4x smaller) or fp16 instead")
