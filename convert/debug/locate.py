"""Find the first op where an artifact leaves the reference.

The reference is Paddle Inference on the program that fed the exporters (the source model, brought to a
legacy program and legalized exactly as ``convert`` does). Every tensor of both sides is compared with
the parity engine (``wherry.runtimes.parity``, the artifact's own tolerance), op by op in the program's
order (a legacy program is stored in execution order, so that order is topological). The first op whose
output fails is the culprit; its inputs' errors are shown beside it so "inputs fine, output wrong" is
visible.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import numpy as np

from wherry.runtimes import device as device_info
from wherry.runtimes import parity
from wherry.runtimes.bundle import Artifact, Bundle, Tolerance, load_bundle
from wherry.runtimes.checker import golden_data
from wherry.runtimes.errors import InputError, NativeCrash, WherryError
from wherry.runtimes.isolate import SharedChild

from ..source import source_sha256
from . import crash, mapping, plan, taps
from . import program as program_io

if TYPE_CHECKING:
    from onnx import GraphProto, NodeProto

log = logging.getLogger(__name__)

DIVERGED, CRASHED, HEALTHY, UNSUPPORTED = "diverged", "crashed", "no divergence", "not supported"


@dataclass
class TensorCheck:
    name: str                            # Paddle variable
    artifact_name: Optional[str]         # its counterpart in the artifact (None: not matched)
    how: str = ""                        # name | position | fused
    parity: Optional[parity.OutputParity] = None

    @property
    def passed(self) -> bool:
        return self.parity is None or self.parity.passed

    def to_json(self) -> dict:
        return {"name": self.name, "artifact_name": self.artifact_name, "matched_by": self.how or None,
                "parity": self.parity.to_json() if self.parity is not None else None}


@dataclass
class OpFinding:
    index: int
    type: str
    artifact_node: str                   # the ONNX node / Lite op that wrote the output
    outputs: List[TensorCheck]
    inputs: List[TensorCheck] = field(default_factory=list)
    attrs: Dict[str, object] = field(default_factory=dict)
    where: str = ""                      # an op of a control-flow sub-block: " (block 1 of while #8)"

    @property
    def diverged(self) -> bool:
        return any(not t.passed for t in self.outputs)

    def worst(self) -> Optional[parity.OutputParity]:
        judged = [t.parity for t in self.outputs if t.parity is not None]
        return min(judged, key=lambda p: (p.snr_db if p.snr_db is not None else -1e9)) if judged else None

    def label(self) -> str:
        head = f"{self.type} #{self.index}{self.where}"
        return f"{head} -> {self.outputs[0].name}" if self.outputs else head

    def to_json(self) -> dict:
        return {"index": self.index, "type": self.type, "where": self.where.strip(" ()") or None,
                "artifact_node": self.artifact_node,
                "diverged": self.diverged, "outputs": [t.to_json() for t in self.outputs],
                "inputs": [t.to_json() for t in self.inputs],
                "attrs": {k: v for k, v in self.attrs.items() if isinstance(v, (int, float, str, bool, list))}}


@dataclass
class ArtifactDebug:
    file: str
    format: str
    precision: str
    status: str = UNSUPPORTED
    reason: str = ""
    first: Optional[OpFinding] = None
    ops: List[OpFinding] = field(default_factory=list)     # every op with a compared output, in order
    unmatched: List[str] = field(default_factory=list)     # Paddle tensors without a counterpart
    removed: List[str] = field(default_factory=list)       # fetched, yet removed by the tool's fusions
    neighbours: Dict[str, list] = field(default_factory=dict)  # graph excerpt around the culprit
    seconds: float = 0.0
    rounds: int = 0                                        # tapped runs (more than one: a bisection)
    tapped: int = 0                                        # Paddle tensors tapped over all rounds
    # outputs before the first divergence that check's tolerance fails and debug's rounding band passes
    rounding: List[Tuple[OpFinding, parity.OutputParity]] = field(default_factory=list)

    def _lowest_rounding(self) -> Tuple[OpFinding, parity.OutputParity]:
        return min(self.rounding, key=lambda entry: entry[1].snr_db or 0.0)

    def rounding_json(self) -> Optional[dict]:
        if not self.rounding:
            return None
        finding, lowest = self._lowest_rounding()
        return {"outputs": len(self.rounding), "lowest_snr_db": lowest.snr_db, "at": finding.label(),
                "band_snr_db": ROUNDING_SNR_DB}

    def rounding_note(self) -> str:
        """What the rounding band passed, in one sentence (empty when nothing)."""
        if not self.rounding:
            return ""
        finding, lowest = self._lowest_rounding()
        return (f"{len(self.rounding)} op output(s) leave check's fp32 tolerance only by float rounding (SNR >= "
                f"{ROUNDING_SNR_DB:g} dB, lowest {lowest.snr_db:.1f} dB at {finding.label()}): no single op is the "
                "cause, the rounding accumulates op by op")

    @property
    def quantized(self) -> bool:
        return self.precision not in ("fp32",)

    def damage(self, top: int = 8) -> List[OpFinding]:
        """The ops with the lowest SNR (a quantized artifact's per-layer damage table)."""
        return [f for f, _ in self._ranked()][:top]

    def _ranked(self) -> List[Tuple[OpFinding, parity.OutputParity]]:
        """Each op whose worst output has an SNR, with that output's parity, lowest SNR first (stable)."""
        judged: List[Tuple[float, OpFinding, parity.OutputParity]] = []
        for f in self.ops:
            worst = f.worst()
            if worst is not None and worst.snr_db is not None:
                judged.append((worst.snr_db, f, worst))
        return [(f, worst) for _, f, worst in sorted(judged, key=lambda entry: entry[0])]

    def to_json(self) -> dict:
        return {"file": self.file, "format": self.format, "precision": self.precision, "status": self.status,
                "reason": self.reason, "first_divergence": self.first.to_json() if self.first else None,
                "ops": [f.to_json() for f in self.ops], "unmatched": self.unmatched,
                "removed_by_fusion": self.removed, "graph_excerpt": self.neighbours,
                "rounds": self.rounds, "tensors_tapped": self.tapped, "seconds": round(self.seconds, 3),
                "beyond_check_by_rounding": self.rounding_json(),
                "damage": self.damage_json() if self.quantized else None}

    def damage_json(self) -> List[dict]:
        """Every compared layer of a quantized artifact, most damaged (lowest SNR against the float model's
        same layer) first: the per-layer accuracy view of RKNN-Toolkit2's accuracy_analysis."""
        rows = []
        for rank, (f, worst) in enumerate(self._ranked(), 1):
            rows.append({"rank": rank, "index": f.index, "type": f.type, "artifact_node": f.artifact_node,
                         "tensor": next(t.name for t in f.outputs if t.parity is worst), **{
                             k: (v if isinstance(v, (int, float)) and math.isfinite(v) else (str(v) if v is not None
                                                                                             else None))
                             for k, v in (("snr_db", worst.snr_db), ("cosine", worst.cosine),
                                          ("max_abs", worst.max_abs), ("max_rel", worst.max_rel))},
                         "passed": worst.passed})
        return rows


@dataclass
class DebugReport:
    bundle: str
    name: str
    model: Optional[str]                 # the source model given, None: the bundle's kept program
    device: dict
    tools: dict
    reference_notes: List[str]
    artifacts: List[ArtifactDebug]

    @property
    def diverged(self) -> bool:
        """An artifact left the reference (or its debug build crashed): the command's exit status 1."""
        return any(a.status in (DIVERGED, CRASHED) for a in self.artifacts)

    def to_json(self) -> dict:
        return {"bundle": self.bundle, "name": self.name, "model": self.model, "device": self.device,
                "tools": self.tools, "reference_notes": self.reference_notes, "diverged": self.diverged,
                "artifacts": [a.to_json() for a in self.artifacts]}

    def text(self) -> str:
        from .render import text
        return text(self)


@dataclass
class _Reference:
    program: program_io.Program
    model_file: Path
    params_file: Path
    tensors: Dict[str, np.ndarray]
    notes: List[str]
    source: str = ""                     # how the program was obtained, for the report's note
    detections: set = field(default_factory=set)   # NMS detection rows: compared as sets


def _rebuild(bundle, model: str, work: Path):
    """The exporters' program rebuilt from the source model as ``convert`` does: (model, params, notes,
    translated)."""
    from wherry.convert import legalize, pir_route, source

    info = source.read(model)
    recorded = {f.get("sha256") for f in bundle.manifest.source.get("files", [])}
    given = {source_sha256(p) for p in info.files.all_files()}
    if recorded and not given <= recorded:
        raise InputError(f"{model} is not the model bundle {bundle.root} was converted from (its files' sha256 "
                         "differ from the ones the manifest records)",
                         "pass the source model of this bundle with --model (the manifest's source.files name it)")
    notes = []
    legacy = pir_route.to_legacy_or_pir(info, work, None)
    if legacy.model_file is None or legacy.params_file is None:   # both None: an untranslated PIR program
        raise WherryError("this PIR program has ops wherry's translator cannot carry: there is no legacy program "
                          "to run op by op", "debug works on programs the translator carries (see wherry inspect)")
    legal_model, legal_params, changes = legalize.legalize(legacy.model_file, legacy.params_file, work / "legal")
    if changes != list(bundle.manifest.source.get("legalized", [])):
        notes.append("legalization of the given model differs from the bundle's record (a --skip-pass at convert "
                     "time?): the reference program may not be the one that fed the exporters")
    return legal_model, legal_params, notes, legacy.translated


def _reference(bundle, model: Optional[str], work: Path) -> _Reference:
    """The legalized legacy program ``convert`` fed the exporters (kept in the bundle, or rebuilt from the
    source model ``model``); its tensors are read from Paddle Inference by ``_tap_reference``."""
    if model is None:
        kept = bundle.program_files()
        if kept is None:
            raise InputError(f"bundle {bundle.root} keeps no program to run op by op (converted with "
                             "--debug-program never, a program over the auto limit, or an older wherry)",
                             "pass the source model with --model, or convert again with --debug-program always")
        legal_model, legal_params = kept
        notes, translated = [], bool(bundle.manifest.source.get("translated"))
    else:
        legal_model, legal_params, notes, translated = _rebuild(bundle, model, work)
    program = program_io.read(legal_model)
    source = (f"the legalized {'translated ' if translated else ''}legacy program "
              f"{'kept in the bundle' if model is None else 'rebuilt from ' + str(model)}")
    return _Reference(program, legal_model, legal_params, {}, notes, source, program.detections())


def _tap_reference(ref: _Reference, names: Optional[List[str]], feeds, work: Path,
                   child: Optional[SharedChild] = None) -> None:
    """Add the tensors ``names`` (None: every one) that the reference has not computed yet."""
    wanted = None if names is None else [n for n in names if n not in ref.tensors]
    if wanted == [] and ref.tensors:
        return
    for name, value in taps.paddle_tensors(ref.model_file, ref.params_file, feeds, work, wanted, child).items():
        ref.tensors.setdefault(name, value)


def _check_reference(ref: _Reference, golden) -> None:
    """The reference program itself must still compute the golden outputs (legalization keeps the meaning)."""
    program = ref.program
    # a fetch the reference did not compute is absent, which compare() judges as missing
    outs = {g: ref.tensors[f] for g, f in zip(golden, program.fetches) if f in ref.tensors}
    bad = [r for r in parity.compare(golden, outs) if not r.passed]
    if bad:
        ref.notes.append("the legalized program already differs from the golden outputs of the original model ("
                         + "; ".join(f"{r.name}: {r.reason}" for r in bad) + "): legalization or translation "
                         "changed the result")


def _tolerance(art) -> Tolerance:
    values = list(art.tolerance.values())
    return values[0] if values else parity.default_tolerance(
        art.precision if art.precision in parity.DEFAULTS else "fp32")


# Debug judges each op of an fp32 artifact with a wider rounding band than check's (fp32: noise within 1e-3 x
# scale at >= 80 dB SNR): two correct fp32 runtimes drift apart op by op, to 68-80 dB deep in a detector
# (measured: PicoDet-S on Lite's x86 kernels and on ONNX Runtime), so check's band would name some op
# "the cause" of what is accumulated rounding. An error that concentrates in an op (a wrong kernel, a bad
# weight) sits far below 60 dB.
ROUNDING_SNR_DB, ROUNDING_RTOL = 60.0, 1e-2


def _debug_tolerance(tol: Tolerance) -> Tolerance:
    if tol.noise_rtol is None or tol.noise_min_snr_db is None:   # a quantized or fp16 artifact: as check
        return tol
    return dataclasses.replace(tol, noise_rtol=max(tol.noise_rtol, ROUNDING_RTOL),
                               noise_min_snr_db=min(tol.noise_min_snr_db, ROUNDING_SNR_DB))


def _beyond_check(p: parity.OutputParity, check_tol: Tolerance) -> bool:
    """Passed only inside debug's rounding band: check's own tolerance would fail it."""
    if not p.passed or not p.noise_rule or p.max_abs is None or p.snr_db is None:
        return False
    return not (p.max_abs <= check_tol.atol + (check_tol.noise_rtol or 0.0) * p.scale
                and p.snr_db >= (check_tol.noise_min_snr_db or math.inf))


def _judge(ref: _Reference, tensors, tmap: mapping.TensorMap, name: str, tol, memo=None) -> TensorCheck:
    other = tmap.pairs.get(name)
    check = TensorCheck(name, other, tmap.how.get(name, ""))
    if other is None or name not in ref.tensors or other not in tensors:
        check.artifact_name = None
        return check
    key = (name, other)
    if memo is not None and key in memo:  # a tensor pair is judged once, however often it is asked about
        check.parity = memo[key]
        return check
    golden, actual = np.asarray(ref.tensors[name]), np.asarray(tensors[other])
    if name in ref.detections:  # NMS rows: a set, whose order a correct runtime may choose (as check compares it)
        iou = tol.match_iou or parity.DETECTION_MATCH_IOU["fp32"]
        check.parity = parity.compare_detections(name, golden, actual, dataclasses.replace(tol, match_iou=iou))
        if memo is not None:
            memo[key] = check.parity
        return check
    if golden.shape != actual.shape and golden.size == actual.size:
        actual = actual.reshape(golden.shape)  # e.g. Lite's [1] for a 0-D tensor, a kept unit dim
    check.parity = parity.compare_one(name, golden, actual, tol)
    if memo is not None:
        memo[key] = check.parity
    return check


def _repair_borrowed_names(ref: _Reference, tensors, tmap: mapping.TensorMap, tol, memo=None) -> None:
    """A name-matched tensor that differs but equals a Paddle tensor computed right after it carries a
    fused result under a borrowed name (paddle2onnx's conv + bias add): pair it with that tensor instead."""
    program = ref.program
    used = mapping.consumers(program)
    for name in list(tmap.pairs):
        if tmap.how.get(name) != "name" or _judge(ref, tensors, tmap, name, tol, memo).passed:
            continue
        artifact_name = tmap.pairs[name]
        for later in mapping.downstream(program, name, used=used):
            if later in tmap.pairs:
                continue
            probe = mapping.TensorMap({later: artifact_name}, {later: "fused"})
            if _judge(ref, tensors, probe, later, tol, memo).passed:
                del tmap.pairs[name], tmap.how[name]
                tmap.add(later, artifact_name, "fused")
                log.info("%s holds Paddle's %s (fused under a borrowed name)", artifact_name, later)
                break
    tmap.unmatched = [n for n in program.tensors if n not in tmap.pairs and n not in program.feeds]


def _drop_contradicted_positions(ref: _Reference, tensors, tmap: mapping.TensorMap, tol, memo=None) -> None:
    """A tensor matched by position that differs, while the output of the op it was matched through agrees,
    was matched to the wrong input (the op's slots are in another order than the ONNX node's inputs): it is
    unmatched, and so is every tensor matched through it in turn."""
    def drop(name: str) -> None:
        tmap.pairs.pop(name, None)
        tmap.how.pop(name, None)
        log.info("%s: its match by position is contradicted by its op's output; left unmatched", name)
        for other, anchor in list(tmap.via.items()):
            if anchor == name and tmap.how.get(other) == "position":
                drop(other)
    for name, anchor in list(tmap.via.items()):
        if tmap.how.get(name) != "position" or _judge(ref, tensors, tmap, name, tol, memo).passed:
            continue
        evidence = _judge(ref, tensors, tmap, anchor, tol, memo).parity if anchor in tmap.pairs else None
        if evidence is not None and evidence.passed:
            drop(name)


def walk(ref: _Reference, tensors, tmap: mapping.TensorMap, tol, node_of, memo=None,
         tapped: Optional[set] = None, check_tol: Optional[Tolerance] = None) -> ArtifactDebug:
    """Judge every tapped tensor op by op; ``tapped`` (None: every tensor) limits the unmatched list to the
    tensors this run asked for. ``check_tol``: the artifact's own tolerance, when ``tol`` is debug's wider
    rounding band: the outputs that only the band passes are listed (``ArtifactDebug.rounding``)."""
    result = ArtifactDebug("", "", "")
    program = ref.program
    memo = {} if memo is None else memo
    _drop_contradicted_positions(ref, tensors, tmap, tol, memo)
    _repair_borrowed_names(ref, tensors, tmap, tol, memo)
    feeds = set(program.feeds)
    for op in program.ops:
        outputs = [_judge(ref, tensors, tmap, n, tol, memo) for n in op.data_outputs(program.tensors)]
        outputs = [t for t in outputs if t.parity is not None]
        if not outputs:
            continue
        finding = OpFinding(op.index, op.type, node_of(outputs[0].artifact_name), outputs, attrs=op.attrs,
                            where=op.where())
        result.ops.append(finding)
        if result.first is None and finding.diverged:
            finding.inputs = [TensorCheck(n, n, "feed") if n in feeds else _judge(ref, tensors, tmap, n, tol, memo)
                              for n in _read_values(op, program)]
            result.first = finding
            result.neighbours = _excerpt(program, op)
    # a sub-block's tensor the reference has no value for was in a block these inputs never ran (a branch
    # not taken): nothing to match, reported once in the reference's notes
    result.unmatched = [n for n in tmap.unmatched if (tapped is None or n in tapped)
                        and not (n in program.sub_block_tensors and n not in ref.tensors)]
    result.status = DIVERGED if result.first else HEALTHY
    if check_tol is not None:
        before = result.ops[:result.ops.index(result.first)] if result.first else result.ops
        result.rounding = [(f, t.parity) for f in before for t in f.outputs
                           if t.parity is not None and _beyond_check(t.parity, check_tol)]
    return result


def _read_values(op, program: program_io.Program) -> List[str]:
    """The inputs of ``op`` whose fetched values are the ones it read. A sub-block's op may read a variable its
    control-flow op writes (a loop variable): fetched, that holds the value after the block, so it is left out."""
    inputs = op.data_inputs(program.tensors)
    if op.runner is None:
        return inputs
    carried = {n for names in op.runner.outputs.values() for n in names}
    return [n for n in inputs if n not in carried]


def _excerpt(program: program_io.Program, culprit) -> Dict[str, list]:
    """The culprit, the ops that produced its inputs and the ops that consume its outputs."""
    made = program.producer()
    used = mapping.consumers(program)
    before = [made[n] for n in culprit.data_inputs(program.tensors) if n in made]
    after = [op for n in culprit.data_outputs(program.tensors) for op in used.get(n, [])]

    def row(op):
        return {"index": op.index, "type": op.type, "label": op.label()}
    return {"before": [row(o) for o in before], "culprit": [row(culprit)], "after": [row(o) for o in after[:4]]}


class _Job:
    """One artifact's debug: what it tapped so far, its tensors, and how to tap more (a round)."""

    def __init__(self, ref: _Reference, art, tol, work: Path, feeds, device: Optional[str], place: str,
                 nb_program: Optional[tuple], bisect: bool):
        self.ref, self.art, self.work, self.feeds = ref, art, work, feeds
        self.check_tol, self.tol = tol, _debug_tolerance(tol)   # check's tolerance; debug's rounding band
        self.device, self.place, self.nb_program = device, place, nb_program
        self.bisect = bisect
        self.tensors: Dict[str, np.ndarray] = {}
        self.tapped: set = set()
        self.judged: set = set()     # tapped tensors that were compared (both sides had them, matched)
        self.removed: List[str] = []
        self.memo: dict = {}
        self.rounds = 0
        self.kernels = ""            # the kernels opt chose for the last debug .nb (int8 ones stay int8?)
        self.result: Optional[ArtifactDebug] = None
        self.onnx = art.format == "onnx"
        self.graph: Optional[GraphProto] = None   # an ONNX artifact's graph, read in the first round
        self.in_subgraphs: Dict[str, NodeProto] = {}  # its tensors inside If branches / Loop bodies -> that node
        self.child: Optional[SharedChild] = None  # runs the tapped artifact here (started ahead by debug())

    def prepare(self, onnx_file: Path) -> None:
        """An ONNX artifact: read its graph and match its tensors to the program's (before the first round,
        which taps the evidence of position matches too)."""
        if self.onnx and self.graph is None:
            self.graph = taps.onnx_graph(onnx_file)
            self.in_subgraphs = taps.onnx_subgraph_outputs(self.graph)
            self.static_map = mapping.onnx_map(self.ref.program, taps.onnx_node_outputs(self.graph)
                                               | set(self.in_subgraphs), self.graph)

    def with_evidence(self, wanted: Optional[List[str]]) -> Optional[List[str]]:
        """``wanted`` and, for a tensor matched by position, the op output it was matched through
        (``_drop_contradicted_positions`` judges the match by it)."""
        if wanted is None or not self.onnx:
            return wanted
        via = self.static_map.via
        return list(dict.fromkeys(list(wanted) + [via[n] for n in wanted if n in via]))

    def reference_needs(self, wanted: Optional[List[str]]) -> Optional[List[str]]:
        """The reference tensors a round needs to judge ``wanted`` (None: every one)."""
        if wanted is None:
            return None
        return plan.with_fused_twins(self.ref.program, self.with_evidence(wanted) or []) if self.onnx else list(wanted)

    def tap(self, onnx_file: Path, wanted: Optional[List[str]]) -> None:
        """Run the artifact (or its debug build) with ``wanted`` exposed (None: every tensor)."""
        self.rounds += 1
        program = self.ref.program
        if self.onnx:
            self.prepare(onnx_file)
            wanted = self.with_evidence(wanted)
            pairs = {n: a for n, a in self.static_map.pairs.items() if wanted is None or n in wanted}
            exposed = None if wanted is None else {a for a in pairs.values() if a not in self.in_subgraphs}
            # a sub-block's tensor inside an If/Loop of the graph: passed out of it (taps._expose_in_subgraphs)
            inner = {a: program.tensors[n] for n, a in pairs.items() if a in self.in_subgraphs}
            new, _ = taps.onnx_tensors(onnx_file, self.feeds, self.work, self.device, exposed, self.child, inner)
        else:
            model, params = self.nb_program or (self.ref.model_file, self.ref.params_file)
            if wanted is None and self.art.precision != "fp32":
                # a quantized program's own extra tensors (its quantize/dequantize pairs) are never fetched: Lite
                # folds those pairs into int8 kernels, and a fetched one would keep its layer in float
                wanted = plan.every_tensor(program)
            # the kernels opt chose matter for a quantized program only (are its layers int8 in the debug build?)
            new, removed, self.kernels = taps.lite_tensors(Path(model), Path(params), self.feeds, self.work,
                                                           self.place, self.device, wanted,
                                                           kernels=self.art.precision != "fp32", child=self.child)
            self.removed = list(dict.fromkeys(self.removed + removed))
        for name, value in new.items():
            self.tensors.setdefault(name, value)
        self.tapped |= set(plan.every_tensor(program) if wanted is None else wanted)

    def judge(self) -> ArtifactDebug:
        program = self.ref.program
        if self.onnx:
            assert self.graph is not None, "tap() reads the graph before the first judge()"
            tmap = mapping.TensorMap(dict(self.static_map.pairs), dict(self.static_map.how),
                                     list(self.static_map.unmatched), dict(self.static_map.via))
            producer = {o: n for n in self.graph.node for o in n.output}
            producer.update({o: n for g in (a.g for n in self.graph.node for a in n.attribute if a.g.node)
                             for n in g.node for o in n.output})

            def node_of(name):
                node = producer.get(name)
                while node is not None and node.op_type in mapping.QDQ:  # quantized: the node under the Q/DQ
                    node = producer.get(node.input[0])
                return f"ONNX {node.op_type} {node.name or name}" if node is not None else "?"
        else:
            # Lite returns a fetched bool tensor unfilled (all False or all True while the ops that read it
            # compute right, measured on Lite 2.13's x86 greater_than): bool tensors are not compared
            tmap = mapping.by_name(program, {n for n in self.tensors if program.tensors.get(n) != "bool"})
            kinds = {n: op.type for op in program.ops for n in op.data_outputs(program.tensors)}

            def node_of(name):
                return f"Lite {self.place} {kinds.get(name, '?')} (debug .nb)"
        result = walk(self.ref, self.tensors, tmap, self.tol, node_of, self.memo, self.tapped, self.check_tol)
        self.judged |= {t.name for f in result.ops for t in f.outputs if t.parity is not None}
        if not self.onnx:
            result.removed = [n for n in self.removed if n not in self.tensors]
        self.result = result
        return result

    def locate_crash(self, died: NativeCrash) -> ArtifactDebug:
        """The op the debug .nb dies in (``crash``: a bisection over the program's prefixes), with its inputs
        judged against the reference from the prefix before it."""
        program = self.ref.program
        model, params = self.nb_program or (self.ref.model_file, self.ref.params_file)

        def run(last_op: int, names: List[str]) -> Dict[str, np.ndarray]:
            tensors, _, _ = taps.lite_tensors(Path(model), Path(params), self.feeds, self.work / "prefix", self.place,
                                           self.device, names, last_op, kernels=False)
            return tensors
        start = time.perf_counter()
        position, builds = crash.crash_point(program, run)
        self.rounds += builds
        said = died.message.split("; last log lines:")[0].splitlines()[0]
        if position is None:
            return ArtifactDebug("", "", "", UNSUPPORTED, f"{said}; no prefix of the program crashes on its own, "
                                 "so the crash comes with the fetched taps, not with one op")
        op = program.top_ops()[position]
        tensors = crash.inputs_before(program, position, run)
        _tap_reference(self.ref, list(tensors), self.feeds, self.work / "reference")
        tmap = mapping.by_name(program, set(tensors))
        inputs = [TensorCheck(n, n, "feed") if n in program.feeds else _judge(self.ref, tensors, tmap, n, self.tol)
                  for n in op.data_inputs(program.tensors)]
        finding = OpFinding(op.index, op.type, f"Lite {self.place} {op.type} (debug .nb)", [], inputs, op.attrs)
        found = ArtifactDebug("", "", "", CRASHED, f"{said} (located by {builds} builds of the program's prefixes "
                              f"in {time.perf_counter() - start:.1f} s)", finding, neighbours=_excerpt(program, op))
        self.result = found
        return found

    def next_names(self) -> Optional[List[str]]:
        """After a bisection round: the tensors the next round taps, or None when the verdict is final."""
        first = self.result.first if self.result else None
        # judged, not merely tapped: a tensor the artifact has no counterpart of (paddle2onnx's conv writes the
        # bias add after it under the conv's name, so the add's output is nowhere) bounds no window, or the op
        # that really diverged before it would never be tapped
        if not self.bisect or first is None or plan.resolved(self.ref.program, first.index, self.judged):
            return None
        more = [n for n in plan.window(self.ref.program, first.index, self.judged) if n not in self.tapped]
        return more or None


def _unsupported_reason(art: Artifact, bundle: Bundle, on_device: bool) -> Optional[str]:
    if art.format == "onnx":
        return None
    if art.format == "nb" and art.precision == "fp32" and "opencl" not in (art.places or ""):
        return None
    if art.format == "nb" and art.precision == "int8" and art.arch == "arm":
        # its quantized program, kept by the conversion, rebuilt tapped: each layer's int8 damage on ARM kernels
        if bundle.program_files(art.file) is None:
            return ("the bundle keeps no quantized program for this int8 .nb (converted with --debug-program never, "
                    "over the size limit, or by an older wherry); debug its ONNX twin")
        if not on_device:
            return ("an int8 .nb runs only on ARM kernels (Lite's x86 runtime returns NaN for it): debug it with "
                    "--device emulated-aarch64 (or ssh://user@board)")
        return None
    return (f"debug rebuilds a .nb from the program; for a {art.precision} .nb that would not be the artifact "
            "itself (its quantized or fp16 kernels); debug its ONNX twin or the fp32 .nb")


def _in_parallel(calls) -> list:
    """Run the rounds' child processes side by side: each waits mostly on its own child (Paddle, Lite's opt,
    ONNX Runtime), so the reference and the artifacts load and run at once. Returns each call's exception or
    None."""
    from concurrent.futures import ThreadPoolExecutor

    def guarded(call):
        try:
            call()
            return None
        except WherryError as exc:
            return exc
    if len(calls) == 1:
        return [guarded(calls[0])]
    with ThreadPoolExecutor(max_workers=min(3, len(calls))) as pool:
        return list(pool.map(guarded, calls))


def debug(bundle_dir, model: Optional[str] = None, artifacts: Optional[Sequence[str]] = None, work: Optional[Path] = None,
          nb_program: Optional[tuple] = None, device: Optional[str] = None, taps_mode: str = plan.AUTO) -> DebugReport:
    """Locate the first diverging op of each chosen artifact (default: every one debug can rebuild or run).

    ``model`` is the source model, to rebuild the exporters' program from; None uses the program the bundle
    keeps (``convert --debug-program``).

    ``device`` (local, emulated-aarch64, ssh://..., http://...) runs the ONNX artifacts there, through the
    connections of ``check --device``; the reference and Lite debug builds run on this host.

    ``nb_program`` = (model, params) builds the Lite debug .nb from that program instead of the legalized
    source (to debug a hand-edited program; the tests plant faults this way).

    ``taps_mode``: "all" taps every tensor in one run per format; "auto" does so for a small graph and
    bisects a large one (``plan``), fp32 artifacts only (a quantized artifact's per-layer damage needs
    every layer)."""
    if device and device.startswith("http://"):
        raise InputError("debug cannot use an HTTP runner yet (it takes whole bundles, and debug runs a modified "
                         "ONNX model)", "use --device ssh://user@host or emulated-aarch64, or debug on this host")
    if taps_mode not in plan.MODES:
        raise InputError(f"unknown taps mode {taps_mode!r}", f"use one of {', '.join(plan.MODES)}")
    bundle = load_bundle(bundle_dir)
    chosen = [bundle.manifest.artifact(a) for a in artifacts] if artifacts else list(bundle.manifest.artifacts)
    feeds, golden = golden_data(bundle)
    on_device = device not in (None, "local")
    with tempfile.TemporaryDirectory(prefix="wherry-debug-") as scratch, contextlib.ExitStack() as children:
        def started(backend: str) -> SharedChild:
            """A child that imports ``backend`` while this process prepares the tapped programs (the first
            round then pays no interpreter start and library import: Paddle's alone is ~0.9 s)."""
            child = children.enter_context(contextlib.closing(SharedChild()))
            child.prewarm([backend])
            return child
        reference_child = started("paddle")
        work = Path(work or scratch)
        ref = _reference(bundle, model, work / "reference")
        large = plan.bisects(ref.program, taps_mode)
        results: Dict[str, ArtifactDebug] = {}
        jobs: List[_Job] = []
        for art in chosen:
            why = _unsupported_reason(art, bundle, on_device)
            if not why and on_device and art.format != "onnx" and art.arch != "arm":
                why = "on a device, debug runs ONNX artifacts and ARM .nb files; an x86 .nb is debugged on this host"
            if why:
                results[art.file] = ArtifactDebug(art.file, art.format, art.precision, UNSUPPORTED, why)
                continue
            bundle.verify_artifact(art)
            # an ARM .nb is debugged with ARM kernels on the device; without one, with x86 kernels here
            place = "arm" if art.format == "nb" and art.arch == "arm" and on_device else "x86"
            quantized = bundle.program_files(art.file) if art.precision == "int8" else None
            job = _Job(ref, art, _tolerance(art), work / art.file, feeds,
                       device if (on_device and (art.format == "onnx" or place == "arm")) else None, place,
                       quantized or nb_program, large and art.precision == "fp32")
            if job.device is None:
                job.child = started("onnxruntime" if job.onnx else "paddlelite")
            job.prepare(bundle.root / art.file)
            jobs.append(job)
        wanted = {j.art.file: (plan.checkpoints(ref.program, matched=set(j.static_map.pairs) if j.onnx else None)
                               if j.bisect else None) for j in jobs}
        seconds = {j.art.file: 0.0 for j in jobs}
        active = list(jobs)
        first_round = True
        while active or first_round:
            needs = [j.reference_needs(wanted[j.art.file]) for j in active]
            listed = [n for n in needs if n is not None]   # None: every tensor
            ref_names = None if len(listed) < len(needs) else list(dict.fromkeys(x for n in listed for x in n))
            calls = [lambda: _tap_reference(ref, ref_names, feeds, work / "reference", reference_child)]
            for job in active:
                def run(job=job):
                    start = time.perf_counter()
                    try:
                        job.tap(bundle.root / job.art.file, wanted[job.art.file])
                    finally:
                        seconds[job.art.file] += time.perf_counter() - start
                calls.append(run)
            errors = _in_parallel(calls)
            if errors[0] is not None:
                raise errors[0]
            if first_round:
                _check_reference(ref, golden)
                first_round = False
            still = []
            for job, error in zip(active, errors[1:]):
                if isinstance(error, NativeCrash) and not job.onnx:   # the .nb itself dies: in which op?
                    start = time.perf_counter()
                    job.locate_crash(error)
                    seconds[job.art.file] += time.perf_counter() - start
                    continue
                if error is not None:
                    results[job.art.file] = ArtifactDebug(job.art.file, job.art.format, job.art.precision,
                                                          UNSUPPORTED, error.message)
                    continue
                start = time.perf_counter()
                job.judge()
                more = job.next_names()
                seconds[job.art.file] += time.perf_counter() - start
                if more:
                    wanted[job.art.file] = more
                    still.append(job)
            active = still
        for job in jobs:
            if job.art.file in results:
                continue
            found = job.result
            assert found is not None, "a job without an error in results was judged"
            art = job.art
            found.file, found.format, found.precision = art.file, art.format, art.precision
            found.rounds, found.tapped = job.rounds, len(job.tapped)
            notes = []
            if art.format == "nb":
                notes.append(f"the .nb was rebuilt from the {'quantized ' if art.precision == 'int8' else ''}program "
                             f"with the tapped tensors fetched ({job.place} "
                             "kernels" + (f" on {device}" if job.place == "arm" else "")
                             + (", not the ARM ones of this artifact" if art.arch == "arm" and job.place == "x86"
                                else "") + ")")
                if art.precision != "fp32" and job.kernels:   # the tapped build's int8 layers, to compare
                    notes.append(f"debug build's {job.kernels}")
            inner = [n for n in ref.program.sub_block_tensors if n in found.unmatched]
            if art.format == "onnx" and inner:
                notes.append(f"{len(inner)} tensor(s) of control-flow sub-blocks have no counterpart in the ONNX "
                             "graph (compared: the ones paddle2onnx names alike in an If branch or Loop body of the "
                             "graph itself, not nested deeper)")
            if found.status in (CRASHED, UNSUPPORTED):   # the crash, and where the bisection of prefixes found it
                notes.insert(0, found.reason)
            elif job.bisect:
                notes.append(f"bisected in {job.rounds} round(s): {len(job.tapped)} of "
                             f"{len(plan.every_tensor(ref.program))} tensors tapped (--taps all compares every op)")
            rounding = found.rounding_note()
            if rounding:
                notes.insert(0, rounding)
            found.reason = "; ".join(notes)
            found.seconds = seconds[art.file]
            log.info("%s: %s", art.file, found.status)
            results[art.file] = found
    ref.notes.append(f"reference: Paddle Inference on {ref.source} ({len(ref.program.ops)} ops, "
                     f"{len(ref.program.tensors)} tensors; {len(ref.tensors)} read)")
    in_blocks = ref.program.sub_block_tensors
    if in_blocks:
        idle = [n for n in in_blocks if n not in ref.tensors and any(n in j.tapped for j in jobs)]
        ref.notes.append(f"{len(in_blocks)} tensor(s) inside control-flow sub-blocks (a loop's: its last iteration)"
                         + (f"; {len(idle)} of them in blocks these inputs never run (a branch not taken), not "
                            f"compared: {', '.join(idle[:6])}{' ...' if len(idle) > 6 else ''}" if idle else ""))
    here = device_info.describe() if device in (None, "local") else {"machine": device}
    return DebugReport(str(bundle_dir), bundle.manifest.name, str(model) if model else None, here,
                       dict(bundle.manifest.tools), ref.notes, [results[a.file] for a in chosen])
