"""Find the first op where an artifact leaves the reference.

The reference is Paddle Inference on the program that fed the exporters (the source model, brought to a
legacy program and legalized exactly as ``convert`` does). Every tensor of both sides is compared with
the parity engine (``wherry.runtimes.parity``, the artifact's own tolerance), op by op in the program's
order (a legacy program is stored in execution order, so that order is topological). The first op whose
output fails is the culprit; its inputs' errors are shown beside it so "inputs fine, output wrong" is
visible.
"""
from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from wherry.runtimes import device as device_info
from wherry.runtimes import parity
from wherry.runtimes.bundle import load_bundle
from wherry.runtimes.checker import golden_data
from wherry.runtimes.errors import InputError, WherryError

from ..source import source_sha256
from . import mapping, taps
from . import program as program_io

log = logging.getLogger(__name__)

DIVERGED, HEALTHY, UNSUPPORTED = "diverged", "no divergence", "not supported"


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

    @property
    def diverged(self) -> bool:
        return any(not t.passed for t in self.outputs)

    def worst(self) -> Optional[parity.OutputParity]:
        judged = [t.parity for t in self.outputs if t.parity is not None]
        return min(judged, key=lambda p: (p.snr_db if p.snr_db is not None else -1e9)) if judged else None

    def label(self) -> str:
        return f"{self.type} #{self.index} -> {self.outputs[0].name}" if self.outputs else f"{self.type} #{self.index}"

    def to_json(self) -> dict:
        return {"index": self.index, "type": self.type, "artifact_node": self.artifact_node,
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

    @property
    def quantized(self) -> bool:
        return self.precision not in ("fp32",)

    def damage(self, top: int = 8) -> List[OpFinding]:
        """The ops with the lowest SNR (a quantized artifact's per-layer damage table)."""
        judged = [f for f in self.ops if f.worst() is not None and f.worst().snr_db is not None]
        return sorted(judged, key=lambda f: f.worst().snr_db)[:top]

    def to_json(self) -> dict:
        return {"file": self.file, "format": self.format, "precision": self.precision, "status": self.status,
                "reason": self.reason, "first_divergence": self.first.to_json() if self.first else None,
                "ops": [f.to_json() for f in self.ops], "unmatched": self.unmatched,
                "removed_by_fusion": self.removed, "graph_excerpt": self.neighbours,
                "seconds": round(self.seconds, 3)}


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
        return any(a.status == DIVERGED for a in self.artifacts)

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
    if legacy.model_file is None:
        raise WherryError("this PIR program has ops wherry's translator cannot carry: there is no legacy program "
                          "to run op by op", "debug works on programs the translator carries (see wherry inspect)")
    legal_model, legal_params, changes = legalize.legalize(legacy.model_file, legacy.params_file, work / "legal")
    if changes != list(bundle.manifest.source.get("legalized", [])):
        notes.append("legalization of the given model differs from the bundle's record (a --skip-pass at convert "
                     "time?): the reference program may not be the one that fed the exporters")
    return legal_model, legal_params, notes, legacy.translated


def _reference(bundle, model: Optional[str], feeds, golden, work: Path) -> _Reference:
    """The legalized legacy program ``convert`` fed the exporters (kept in the bundle, or rebuilt from the
    source model ``model``), and all its tensors from Paddle Inference."""
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
    tensors = taps.paddle_tensors(legal_model, legal_params, feeds, work)
    # The reference program itself must still compute the golden outputs (legalization keeps the meaning).
    outs = {g: tensors.get(f) for g, f in zip(golden, program.fetches)}
    bad = [r for r in parity.compare(golden, outs) if not r.passed]
    if bad:
        notes.append("the legalized program already differs from the golden outputs of the original model ("
                     + "; ".join(f"{r.name}: {r.reason}" for r in bad) + "): legalization or translation changed "
                     "the result")
    notes.append(f"reference: Paddle Inference on the legalized {'translated ' if translated else ''}"
                 f"legacy program {'kept in the bundle' if model is None else 'rebuilt from ' + str(model)} "
                 f"({len(program.ops)} ops, {len(program.tensors)} tensors)")
    return _Reference(program, legal_model, legal_params, tensors, notes)


def _tolerance(art) -> "parity.Tolerance":
    values = list(art.tolerance.values())
    return values[0] if values else parity.default_tolerance(
        art.precision if art.precision in parity.DEFAULTS else "fp32")


def _judge(ref: _Reference, tensors, tmap: mapping.TensorMap, name: str, tol) -> TensorCheck:
    other = tmap.pairs.get(name)
    check = TensorCheck(name, other, tmap.how.get(name, ""))
    if other is None or name not in ref.tensors or other not in tensors:
        check.artifact_name = None
        return check
    golden, actual = np.asarray(ref.tensors[name]), np.asarray(tensors[other])
    if golden.shape != actual.shape and golden.size == actual.size:
        actual = actual.reshape(golden.shape)  # e.g. Lite's [1] for a 0-D tensor, a kept unit dim
    check.parity = parity.compare_one(name, golden, actual, tol)
    return check


def _repair_borrowed_names(ref: _Reference, tensors, tmap: mapping.TensorMap, tol) -> None:
    """A name-matched tensor that differs but equals a Paddle tensor computed right after it carries a
    fused result under a borrowed name (paddle2onnx's conv + bias add): pair it with that tensor instead."""
    program = ref.program
    used = mapping.consumers(program)
    for name in list(tmap.pairs):
        if tmap.how.get(name) != "name" or _judge(ref, tensors, tmap, name, tol).passed:
            continue
        artifact_name = tmap.pairs[name]
        for later in mapping.downstream(program, name, used=used):
            if later in tmap.pairs:
                continue
            probe = mapping.TensorMap({later: artifact_name}, {later: "fused"})
            if _judge(ref, tensors, probe, later, tol).passed:
                del tmap.pairs[name], tmap.how[name]
                tmap.add(later, artifact_name, "fused")
                log.info("%s holds Paddle's %s (fused under a borrowed name)", artifact_name, later)
                break
    tmap.unmatched = [n for n in program.tensors if n not in tmap.pairs and n not in program.feeds]


def walk(ref: _Reference, tensors, tmap: mapping.TensorMap, tol, node_of) -> ArtifactDebug:
    result = ArtifactDebug("", "", "")
    program = ref.program
    _repair_borrowed_names(ref, tensors, tmap, tol)
    feeds = set(program.feeds)
    for op in program.ops:
        outputs = [_judge(ref, tensors, tmap, n, tol) for n in op.data_outputs(program.tensors)]
        outputs = [t for t in outputs if t.parity is not None]
        if not outputs:
            continue
        finding = OpFinding(op.index, op.type, node_of(outputs[0].artifact_name), outputs, attrs=op.attrs)
        result.ops.append(finding)
        if result.first is None and finding.diverged:
            finding.inputs = [TensorCheck(n, n, "feed") if n in feeds else _judge(ref, tensors, tmap, n, tol)
                              for n in op.data_inputs(program.tensors)]
            result.first = finding
            result.neighbours = _excerpt(program, op)
    result.unmatched = list(tmap.unmatched)
    result.status = DIVERGED if result.first else HEALTHY
    return result


def _excerpt(program: program_io.Program, culprit) -> Dict[str, list]:
    """The culprit, the ops that produced its inputs and the ops that consume its outputs."""
    made = program.producer()
    used = mapping.consumers(program)
    before = [made[n] for n in culprit.data_inputs(program.tensors) if n in made]
    after = [op for n in culprit.data_outputs(program.tensors) for op in used.get(n, [])]

    def row(op):
        return {"index": op.index, "type": op.type, "label": op.label()}
    return {"before": [row(o) for o in before], "culprit": [row(culprit)], "after": [row(o) for o in after[:4]]}


def _debug_onnx(ref: _Reference, path: Path, feeds, tol, work: Path, device: Optional[str]) -> ArtifactDebug:
    tensors, graph = taps.onnx_tensors(path, feeds, work, device)
    tmap = mapping.onnx_map(ref.program, set(tensors), graph)
    producer = {o: n for n in graph.node for o in n.output}

    def node_of(name):
        node = producer.get(name)
        while node is not None and node.op_type in mapping.QDQ:  # a quantized graph: the node under the Q/DQ
            node = producer.get(node.input[0])
        return f"ONNX {node.op_type} {node.name or name}" if node is not None else "?"
    return walk(ref, tensors, tmap, tol, node_of)


def _debug_lite(ref: _Reference, program_files, feeds, tol, work: Path, place: str = "x86",
                device: Optional[str] = None) -> ArtifactDebug:
    model, params = program_files or (ref.model_file, ref.params_file)
    tensors, removed = taps.lite_tensors(Path(model), Path(params), feeds, work, place, device)
    tmap = mapping.by_name(ref.program, set(tensors))
    kinds = {n: op.type for op in ref.program.ops for n in op.data_outputs(ref.program.tensors)}
    result = walk(ref, tensors, tmap, tol, lambda name: f"Lite {place} {kinds.get(name, '?')} (debug .nb)")
    result.removed = removed
    return result


def _unsupported_reason(art) -> Optional[str]:
    if art.format == "onnx":
        return None
    if art.format == "nb" and art.precision == "fp32" and "opencl" not in (art.places or ""):
        return None
    return (f"debug rebuilds a .nb from the program; for a {art.precision} .nb that would not be the artifact "
            "itself (its quantized or fp16 kernels); debug its ONNX twin or the fp32 .nb")


def debug(bundle_dir, model: Optional[str] = None, artifacts: Optional[Sequence[str]] = None, work: Optional[Path] = None,
          nb_program: Optional[tuple] = None, device: Optional[str] = None) -> DebugReport:
    """Locate the first diverging op of each chosen artifact (default: every one debug can rebuild or run).

    ``model`` is the source model, to rebuild the exporters' program from; None uses the program the bundle
    keeps (``convert --debug-program``).

    ``device`` (local, emulated-aarch64, ssh://..., http://...) runs the ONNX artifacts there, through the
    connections of ``check --device``; the reference and Lite debug builds run on this host.

    ``nb_program`` = (model, params) builds the Lite debug .nb from that program instead of the legalized
    source (to debug a hand-edited program; the tests plant faults this way)."""
    if device and device.startswith("http://"):
        raise InputError("debug cannot use an HTTP runner yet (it takes whole bundles, and debug runs a modified "
                         "ONNX model)", "use --device ssh://user@host or emulated-aarch64, or debug on this host")
    bundle = load_bundle(bundle_dir)
    chosen = [bundle.manifest.artifact(a) for a in artifacts] if artifacts else list(bundle.manifest.artifacts)
    feeds, golden = golden_data(bundle)
    with tempfile.TemporaryDirectory(prefix="wherry-debug-") as scratch:
        work = Path(work or scratch)
        ref = _reference(bundle, model, feeds, golden, work / "reference")
        results = []
        for art in chosen:
            start = time.perf_counter()
            why = _unsupported_reason(art)
            on_device = device not in (None, "local")
            if not why and on_device and art.format != "onnx" and art.arch != "arm":
                why = "on a device, debug runs ONNX artifacts and ARM .nb files; an x86 .nb is debugged on this host"
            # an ARM .nb is debugged with ARM kernels on the device; without one, with x86 kernels here
            place = "arm" if art.format == "nb" and art.arch == "arm" and on_device else "x86"
            if why:
                found = ArtifactDebug(art.file, art.format, art.precision, UNSUPPORTED, why)
            else:
                bundle.verify_artifact(art)
                tol = _tolerance(art)
                where = work / art.file
                try:
                    found = (_debug_onnx(ref, bundle.root / art.file, feeds, tol, where, device) if art.format == "onnx"
                             else _debug_lite(ref, nb_program, feeds, tol, where, place, device if on_device else None))
                except WherryError as exc:
                    found = ArtifactDebug(art.file, art.format, art.precision, UNSUPPORTED, exc.message)
                found.file, found.format, found.precision = art.file, art.format, art.precision
                if art.format == "nb" and found.status != UNSUPPORTED:  # (an UNSUPPORTED reason says why)
                    found.reason = (f"the .nb was rebuilt from the program with every tensor fetched ({place} kernels"
                                    + (f" on {device}" if place == "arm" else "")
                                    + (", not the ARM ones of this artifact" if art.arch == "arm" and place == "x86"
                                       else "") + ")")
            found.seconds = time.perf_counter() - start
            log.info("%s: %s", art.file, found.status)
            results.append(found)
    here = device_info.describe() if device in (None, "local") else {"machine": device}
    return DebugReport(str(bundle_dir), bundle.manifest.name, str(model) if model else None, here,
                       dict(bundle.manifest.tools), ref.notes, results)
