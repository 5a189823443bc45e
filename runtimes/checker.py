"""``runtimes.check``: run every artifact of a bundle that can run on this device against
the golden outputs. Artifacts that cannot run here are reported as "not verifiable
here" with the reason, never as passed."""
from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from . import device, parity, time_limit
from .bundle import Artifact, Bundle, NotBuilt, Tolerance, load_bundle
from .errors import BundleError, InputError, NativeCrash, WherryError
from .text_table import table_lines
from .vocabulary import Verdict

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from .isolate import SharedChild
    from .session import Session

    Arrays = Dict[str, NDArray[Any]]                        # tensors by name (an .npz's, a run's outputs)
    GoldenSet = Tuple[Dict[str, List[int]], Arrays, Arrays]  # (shapes, inputs, outputs): other_golden_sets
    Overrides = Mapping[str, Mapping[str, float]]           # output (or "*") -> tolerance field -> value

log = logging.getLogger(__name__)

# the verdicts (runtimes/vocabulary.py): an ARM .nb that never ran on ARM kernels leaves a bundle
# "partly verified" however well the rest did
PASSED, FAILED, UNVERIFIABLE, NOT_BUILT = Verdict.PASSED, Verdict.FAILED, Verdict.NOT_VERIFIABLE, Verdict.NOT_BUILT
NOT_REPRESENTABLE = Verdict.NOT_REPRESENTABLE


@dataclass
class ArtifactResult:
    file: str
    format: str
    runtime: str
    precision: str
    arch: str
    size: int
    status: str = FAILED
    reason: str = ""
    outputs: List[parity.OutputParity] = field(default_factory=list)
    seconds: float = 0.0
    notes: List[str] = field(default_factory=list)  # e.g. a runtime/opt version mismatch, whatever the verdict
    actual: Optional[Arrays] = field(default=None, repr=False)  # the outputs compared (for check --html figures)
    # one entry per golden set, when the bundle has several input shapes: shapes, status, max_abs, cosine, reason
    shapes: List[Dict[str, Any]] = field(default_factory=list)

    def worst(self) -> Optional[parity.OutputParity]:
        """The output with the largest relative error (the one to show in a one-line summary)."""
        judged = [o for o in self.outputs if o.max_rel is not None]
        failed = [o for o in self.outputs if not o.passed]
        pool = failed or judged or self.outputs
        return max(pool, key=lambda o: o.max_rel if o.max_rel is not None else float("inf")) if pool else None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ArtifactResult":
        """An artifact's result as another device reported it in its check JSON."""
        return cls(data["file"], data["format"], data["runtime"], data["precision"], data["arch"], data["size"],
                   status=data["status"], reason=data.get("reason", ""), seconds=float(data.get("seconds", 0.0)),
                   outputs=[parity.OutputParity.from_json(o) for o in data.get("outputs", [])],
                   notes=list(data.get("notes", [])), shapes=list(data.get("shapes", [])))

    def to_json(self) -> Dict[str, Any]:
        return {"file": self.file, "format": self.format, "runtime": self.runtime, "precision": self.precision,
                "arch": self.arch, "size": self.size, "status": self.status, "reason": self.reason,
                "seconds": round(self.seconds, 4), "outputs": [o.to_json() for o in self.outputs],
                "notes": self.notes, "shapes": self.shapes}


@dataclass
class CheckReport:
    bundle: str
    name: str
    target: Dict[str, Any]
    device: Dict[str, Any]
    results: List[ArtifactResult]
    source: Optional[str] = None    # the model the bundle was converted from (manifest source.path), if recorded
    program_kept: bool = False      # the bundle keeps the exporters' program: debug needs no --model
    # file -> the device (as `--device` names it) whose verdict an artifact took (adopt): debug runs it there
    adopted_from: Dict[str, str] = field(default_factory=dict)

    def debug_command(self, result: ArtifactResult) -> Optional[str]:
        """The `wherry debug` command that finds where a failed artifact leaves the original model (None
        for an artifact that did not fail). Built when shown, from the bundle path of that moment (a
        conversion checks its bundle before renaming it into place)."""
        if result.status != FAILED:
            return None
        if not debuggable(result) and not result.outputs:
            # an artifact debug cannot rebuild that did not even run (a .tflite LiteRT cannot prepare): its ONNX
            # twin's values would say nothing about why
            return None
        return debug_command(self.bundle, None if self.program_kept else (self.source or "MODEL"),
                             result.file if debuggable(result) else None, self.adopted_from.get(result.file))

    @property
    def verified(self) -> List[ArtifactResult]:
        return [r for r in self.results if r.status in (PASSED, FAILED)]

    @property
    def failed(self) -> List[ArtifactResult]:
        return [r for r in self.results if r.status == FAILED]

    @property
    def unverifiable(self) -> List[ArtifactResult]:
        return [r for r in self.results if r.status == UNVERIFIABLE]

    @property
    def not_built(self) -> List[ArtifactResult]:
        return [r for r in self.results if r.status == NOT_BUILT]

    @property
    def not_representable(self) -> List[ArtifactResult]:
        return [r for r in self.results if r.status == NOT_REPRESENTABLE]

    def adopt(self, results: Mapping[str, Mapping[str, Any]], where: str, device: Optional[str] = None) -> None:
        """Take the verdict of another device that ran what this one could not (the emulated board's, for a
        conversion's ARM .nb files): each artifact "not verifiable here" with a passed or failed result in
        ``results`` (file -> that device's artifact JSON) takes it, its reason naming ``where`` it ran.
        ``device``: that device as `--device` names it, so a failure's debug command runs there too."""
        for i, mine in enumerate(self.results):
            theirs = results.get(mine.file)
            if mine.status == UNVERIFIABLE and theirs and theirs.get("status") in (PASSED, FAILED):
                taken = ArtifactResult.from_json(theirs)
                taken.reason = f"run on {where}" + (f": {taken.reason}" if taken.reason else "")
                self.results[i] = taken
                if device:
                    self.adopted_from[mine.file] = device

    @property
    def verdict(self) -> str:
        """One of vocabulary.BUNDLE_VERDICTS: failed (a failure or a missing artifact), not verified (nothing ran here),
        partly verified (some artifacts could not run here), passed (every artifact ran and passed)."""
        if self.failed or self.not_built:
            return FAILED
        if not self.verified:
            return Verdict.NOT_VERIFIED
        return Verdict.PARTLY_VERIFIED if self.unverifiable else PASSED

    @property
    def ok(self) -> bool:
        """No failure, nothing the conversion was asked for is missing, and at least one artifact was
        really verified on this device."""
        return not self.failed and not self.not_built and bool(self.verified)

    def to_json(self) -> Dict[str, Any]:
        return {"bundle": self.bundle, "name": self.name, "target": self.target, "device": self.device,
                "ok": self.ok, "verdict": self.verdict,
                "artifacts": [{**r.to_json(), "debug_command": self.debug_command(r)} for r in self.results]}

    def table(self) -> str:
        rows = [("artifact", "size", "precision", "max abs err", "cosine", "verdict")]
        notes = []
        for r in self.results:
            worst = r.worst()
            err = f"{worst.max_abs:.3g}" if worst and worst.max_abs is not None else "-"
            cos = f"{min(o.cosine for o in r.outputs if o.cosine is not None):.6f}" \
                if any(o.cosine is not None for o in r.outputs) else "-"
            verdict = Verdict(r.status).label
            rows.append((r.file, _size(r.size) if r.size else "-", r.precision, err, cos, verdict))
            for o in r.outputs:
                if not o.passed:
                    notes.append(f"  {r.file}: output {o.name!r}: {o.reason}")
                elif o.noise_rule:
                    notes.append(f"  {r.file}: output {o.name!r}: passed under the rounding-noise rule ({o.reason})")
                elif o.uninformative:
                    notes.append(f"  {r.file}: output {o.name!r}: golden nearly constant; parity uninformative")
            if r.reason and r.status != PASSED:
                notes.append(f"  {r.file}: {r.reason}")
            if len(r.shapes) > 1:
                notes.append(f"  {r.file}: checked at {len(r.shapes)} input shapes: "
                             + "; ".join(f"{shape_text(s['shapes'])} {s['status']}" for s in r.shapes))
            notes.extend(f"  {r.file}: {note}" for note in r.notes)
            if self.debug_command(r):
                notes.append(f"  {r.file}: find the first diverging layer: {self.debug_command(r)}")
        lines = table_lines(rows)
        summary = (f"{self.name}: {len([r for r in self.results if r.status == PASSED])} passed, "
                   f"{len(self.failed)} failed, {len(self.unverifiable)} not verifiable here"
                   + (f", {len(self.not_built)} not built" if self.not_built else "")
                   + (f", {len(self.not_representable)} not representable" if self.not_representable else "")
                   + f" (device {device.phrase(self.device)})")
        if not self.verified:
            summary += " - nothing could be verified on this device"
        summary = f"{Verdict(self.verdict).label}  {summary}"
        return "\n".join(lines + notes + [summary])

    def junit_xml(self) -> str:
        """JUnit XML (one testcase per artifact x output) as CI servers read it: built with ElementTree,
        with the suite's time, timestamp and hostname."""
        import datetime
        import socket
        import xml.etree.ElementTree as ET

        suite = ET.Element("testsuite", name=f"wherry-check {self.name}", hostname=socket.gethostname(),
                           timestamp=datetime.datetime.now().replace(microsecond=0).isoformat())
        failures = skipped = 0
        for r in self.results:
            outs: Sequence[Optional[parity.OutputParity]] = r.outputs or [None]
            for o in outs:
                case = ET.SubElement(suite, "testcase", classname=f"wherry.{self.name}",
                                     name=f"{r.file}::{o.name}" if o is not None else r.file,
                                     time=f"{r.seconds / len(outs):.4f}")
                if r.status == UNVERIFIABLE:
                    ET.SubElement(case, "skipped", message=f"{UNVERIFIABLE}: {r.reason}")
                    skipped += 1
                elif r.status == NOT_BUILT:
                    ET.SubElement(case, "failure", message=f"{NOT_BUILT}: {r.reason}")
                    failures += 1
                elif r.status == NOT_REPRESENTABLE:
                    ET.SubElement(case, "skipped", message=f"{NOT_REPRESENTABLE}: {r.reason}")
                    skipped += 1
                elif o is None or not o.passed:
                    failure = ET.SubElement(case, "failure", message=(o.reason if o is not None else "") or r.reason)
                    failure.text = json.dumps(o.to_json() if o is not None else r.to_json(), indent=1)
                    failures += 1
        suite.set("tests", str(len(suite)))
        suite.set("failures", str(failures))
        suite.set("errors", "0")
        suite.set("skipped", str(skipped))
        suite.set("time", f"{sum(r.seconds for r in self.results):.4f}")
        root = ET.Element("testsuites")
        root.append(suite)
        ET.indent(root)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def debuggable(result: ArtifactResult) -> bool:
    """Whether `wherry debug` can take this artifact itself (ONNX, fp32 .nb, and an ARM int8 .nb, whose quantized
    program the bundle keeps, on a device); for the others it debugs the bundle's ONNX and fp32 twins."""
    return result.format == "onnx" or (result.format == "nb" and (
        result.precision == "fp32" or (result.precision == "int8" and result.arch == "arm")))


def debug_command(bundle: str, model: Optional[str], artifact: Optional[str] = None,
                  device: Optional[str] = None) -> str:
    """`wherry debug BUNDLE [--model MODEL] [--artifact FILE] [--device DEVICE]`, quoted for a POSIX shell.
    ``model``: None when the bundle keeps its program; the source path the conversion recorded, or MODEL for a
    bundle without one (converted by an older wherry). ``device``: where the artifact failed, when not here."""
    import shlex

    words = ["wherry", "debug", bundle] + (["--model", model] if model else []) \
        + (["--artifact", artifact] if artifact else []) + (["--device", device] if device else [])
    return " ".join(shlex.quote(w) for w in words)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return str(n)


def shape_text(shapes: Mapping[str, Sequence[int]]) -> str:
    """{"x": [1, 3, 32, 32]} -> "x=1,3,32,32" (the --shape spelling)."""
    return " ".join(f"{name}={','.join(map(str, dims))}" for name, dims in shapes.items())


def golden_data(bundle: Bundle, max_bytes: Optional[int] = None,
                golden_set: Optional[Dict[str, Any]] = None) -> Tuple[Arrays, Arrays]:
    """(inputs, outputs) of a bundle's golden npz files (the main set, or ``golden_set``), after checking
    their hashes.

    Golden outputs with no array would make every check pass with nothing compared: refused."""
    from .npz import load_npz

    paths = [bundle.golden_file(key, golden_set) for key in ("inputs", "outputs")]
    try:
        feeds, outputs = (load_npz(p, max_bytes) for p in paths)
    except InputError as exc:
        raise BundleError(f"golden data of {bundle.root} is unreadable: {exc.message}", exc.hint) from None
    expected = len(bundle.manifest.outputs)
    if len(outputs) != expected:
        # with an output missing, that output would go unchecked (and with none, everything would pass)
        raise BundleError(f"golden outputs of {bundle.root} hold {len(outputs)} array(s) for the model's {expected} "
                          "output(s): there is nothing to compare some outputs with", "convert the model again")
    return feeds, outputs


def other_golden_sets(bundle: Bundle, max_bytes: Optional[int] = None) -> List[GoldenSet]:
    """(shapes, inputs, outputs) of each golden set at another input shape (models with dynamic dims)."""
    return [(g["shapes"], *golden_data(bundle, max_bytes, g)) for g in bundle.manifest.golden_sets()[1:]]


def _shapes_of(feeds: Mapping[str, NDArray[Any]]) -> Dict[str, List[int]]:
    return {name: list(value.shape) for name, value in feeds.items() if not name.endswith(".lengths")}


def _align(golden: Mapping[str, NDArray[Any]], actual: Mapping[str, NDArray[Any]]) -> Arrays:
    """Actual outputs keyed by golden names; by position when the names differ but the counts match
    (an artifact made from a translated program may name its outputs differently)."""
    if all(n in actual for n in golden) or len(actual) != len(golden):
        return dict(actual)
    log.info("output names differ from the golden ones (%s vs %s); matching by position",
             list(actual), list(golden))
    return dict(zip(golden, actual.values()))


def check_artifact(bundle: Bundle, art: Artifact, feeds: Arrays, golden: Arrays, overrides: Optional[Overrides] = None,
                   isolate: bool = True, threads: Optional[int] = None, timeout: Optional[float] = None,
                   max_npz_bytes: Optional[int] = None, child: Optional[SharedChild] = None,
                   others: Sequence[GoldenSet] = ()) -> ArtifactResult:
    """``child`` (an isolate.SharedChild): run the artifact in that child, shared with the bundle's other
    artifacts; a crash there is confirmed in a fresh child before it is this artifact's verdict.
    ``others``: (shapes, feeds, golden) of the golden sets at other input shapes (other_golden_sets): the
    artifact runs at each in the same session, and fails if it fails at any (_judge_other_shapes)."""
    from .session import open_session, unsupported_reason

    result = ArtifactResult(art.file, art.format, art.runtime, art.precision, art.arch, art.size)
    start = time.perf_counter()
    try:
        bundle.verify_artifact(art)  # integrity first, even for artifacts that cannot run here
    except BundleError as exc:
        result.reason = exc.message
        return result
    why_not = unsupported_reason(art.arch, art.runtime) or _opencl_reason(art)
    if why_not:
        result.status, result.reason = UNVERIFIABLE, why_not
        return result
    version_note = _lite_version_note(bundle, art) if art.runtime == "paddlelite" else None
    if version_note:
        result.notes.append(version_note)

    def run(shared: Optional[SharedChild]) -> Tuple[Arrays, List[Union[Arrays, WherryError]]]:
        # every golden set in one session: a load per artifact, not per shape
        with open_session(bundle, artifact=art.file, isolate=isolate, threads=threads,
                          timeout=timeout, max_reply_bytes=max_npz_bytes, child=shared) as session:
            return session.run(feeds), [_run_at(session, other_feeds) for _, other_feeds, _ in others]

    try:
        try:
            actual, other_actuals = run(child)
        except NativeCrash:
            if child is None or child.fresh:
                raise
            # the child had run other artifacts first: only a crash in a child of its own is its verdict
            log.info("%s crashed in a shared child; trying it in a fresh one", art.file)
            actual, other_actuals = run(None)
    except WherryError as exc:
        result.reason = str(exc) + (" (see the version note: it is the likely cause)" if version_note else "")
        result.seconds = time.perf_counter() - start
        return result
    judge(result, art, golden, actual, overrides)
    if others:
        def alone(other_feeds: Arrays) -> Union[Arrays, WherryError]:   # a fresh session that runs only this shape
            with open_session(bundle, artifact=art.file, isolate=isolate, threads=threads, timeout=timeout,
                              max_reply_bytes=max_npz_bytes) as session:
                return _run_at(session, other_feeds)
        _judge_other_shapes(result, art, feeds, others, other_actuals, overrides, alone)
    result.seconds = time.perf_counter() - start
    return result


def _run_at(session: Session, feeds: Arrays) -> Union[Arrays, WherryError]:
    """The outputs at one more golden set, or the error that stopped it there, a crash included (the
    verdict at that shape; the shapes before it keep theirs): an artifact that lost a dynamic dimension
    refuses another shape, and a runtime may abort on a change of shape."""
    try:
        return session.run(feeds)
    except WherryError as exc:
        return exc


def _judge_other_shapes(result: ArtifactResult, art: Artifact, feeds: Arrays, others: Sequence[GoldenSet],
                        other_actuals: Sequence[Union[Arrays, WherryError]], overrides: Optional[Overrides],
                        alone: Callable[[Arrays], Union[Arrays, WherryError]]) -> None:
    """Record the verdict at each golden set in ``result.shapes``; the artifact passes only if every one does.

    The shapes run one after another in one session, as an application with a dynamic input does. A shape
    that fails there is run again in a session of its own (``alone``), which decides its verdict. When it
    passes alone, the artifact is right at that shape but its runtime mishandles a change of input shape
    (Paddle Lite 2.13's x86 predictor does): said in a note and in the shape's ``shape_change`` entry (which
    ``--strict`` fails), with the way around it, one predictor per input shape."""
    def entry(shapes: Dict[str, List[int]], judged: ArtifactResult) -> Dict[str, Any]:
        worst = judged.worst()
        return {"shapes": shapes, "status": judged.status, "reason": judged.reason,
                "max_abs": worst.max_abs if worst else None, "cosine": worst.cosine if worst else None}

    def verdict(golden: Arrays, actual: Union[Arrays, WherryError]) -> ArtifactResult:
        judged = ArtifactResult(art.file, art.format, art.runtime, art.precision, art.arch, art.size)
        if isinstance(actual, WherryError):   # its first line, and the last log line of a crash
            lines = [line.strip() for line in actual.message.splitlines() if line.strip()]
            judged.reason = lines[0] + (f" ({lines[-1]})" if len(lines) > 1 else "")
        else:
            judge(judged, art, golden, actual, overrides)
        return judged

    result.shapes.append(entry(_shapes_of(feeds), result))
    for (shapes, other_feeds, golden), actual in zip(others, other_actuals):
        judged, shape_change = verdict(golden, actual), None
        by_itself: ArtifactResult
        if judged.status != PASSED:
            try:
                by_itself = verdict(golden, alone(other_feeds))
            except WherryError as exc:
                by_itself = verdict(golden, exc)
            if by_itself.status == PASSED:
                shape_change = f"{judged.reason or 'wrong outputs'} after the same session ran {shape_text(_shapes_of(feeds))}"
                result.notes.append(f"correct at {shape_text(shapes)} in a session of its own, but {shape_change}: "
                                    "the runtime mishandles a change of input shape; create one predictor per "
                                    "input shape")
                judged = by_itself
        result.shapes.append({**entry(shapes, judged), **({"shape_change": shape_change} if shape_change else {})})
        if judged.status != PASSED and result.status == PASSED:
            result.status, result.reason = FAILED, f"at {shape_text(shapes)}: {judged.reason}"


def judge(result: ArtifactResult, art: Artifact, golden: Mapping[str, NDArray[Any]],
          actual: Mapping[str, NDArray[Any]], overrides: Optional[Overrides] = None) -> ArtifactResult:
    """Compare an artifact's outputs with the golden ones under its tolerances; sets the verdict.
    Shared by every place an artifact runs (this device, or a browser: wherry.targets.web)."""
    actual = _align(golden, actual)
    result.actual = actual
    tolerances: Dict[str, Tolerance] = {}
    for name in golden:
        base = art.tolerance.get(name) or parity.default_tolerance(art.precision if art.precision in
                                                                   parity.DEFAULTS else "fp32")
        tolerances[name] = parity.apply_overrides(base, name, overrides)
    result.outputs = parity.compare(golden, actual, tolerances)
    failed = [o.name for o in result.outputs if not o.passed]
    result.status = FAILED if failed else PASSED
    if failed:
        result.reason = "failing output(s): " + ", ".join(failed)
    return result


def not_built_result(missing: NotBuilt) -> ArtifactResult:
    """A requested artifact the conversion could not build: reported, never counted as passed."""
    reason = f"{missing.status} ({missing.tool}): {missing.reason.splitlines()[0] if missing.reason else ''}"
    if missing.hint:
        reason += f"; hint: {missing.hint}"
    status = NOT_REPRESENTABLE if missing.status == NOT_REPRESENTABLE else NOT_BUILT
    return ArtifactResult(missing.file, missing.format, missing.tool, missing.precision, missing.arch, 0,
                          status=status, reason=reason)


def _opencl_reason(art: Artifact) -> Optional[str]:
    """A .nb optimized for OpenCL needs a Lite runtime with OpenCL; the ARM runtime wherry builds has none."""
    if art.runtime != "paddlelite" or "opencl" not in (art.places or ""):
        return None
    from .backends import paddlelite_light

    built = paddlelite_light.runtime_info()
    if built is not None and not built.get("opencl", False):
        return "an OpenCL .nb; this device's Paddle Lite runtime (wherry's ARM build) has no OpenCL"
    return None


def _lite_version_note(bundle: Bundle, art: Artifact) -> Optional[str]:
    """Why this device's Paddle Lite may not read a .nb the way the opt that wrote it meant, or None."""
    from . import backends, lite_version
    from .backends import paddlelite_light

    built = paddlelite_light.runtime_info()
    if built:
        runtime, commit = built.get("lite_tag") or built.get("version"), built.get("lite_commit")
    else:
        runtime, commit = backends.version("paddlelite"), None
    return lite_version.mismatch(bundle.manifest.tools.get("paddlelite"), runtime, commit, art.file)


def check(bundle_dir: Union[str, os.PathLike[str]], artifacts: Optional[Sequence[str]] = None,
          overrides: Optional[Mapping[str, Union[float, Mapping[str, float]]]] = None, isolate: bool = True,
          threads: Optional[int] = None, timeout: Union[None, str, float] = time_limit.AUTO,
          max_npz_bytes: Optional[int] = None, child: Optional[SharedChild] = None) -> CheckReport:
    """Check every artifact (or the named ones) that can run on this device against the golden outputs.

    ``timeout`` bounds loading and running each isolated artifact (its child is killed after it): seconds,
    None for no limit, or "auto" (the default) for a limit derived from the golden run time the bundle
    records (runtimes/time_limit.py); a caller's ``child`` keeps the limit it was made with;
    ``max_npz_bytes`` bounds each golden file and each artifact's outputs (default runtimes.npz.MAX_NPZ_BYTES);
    ``child``: an isolate.SharedChild the caller keeps for several checks (the converter's, for all the
    bundles of one call), instead of one started and stopped here."""
    bundle = load_bundle(bundle_dir)
    timeout = time_limit.choose(timeout, bundle.manifest.golden.get("seconds"))
    overrides = parity.normalize_overrides(overrides, [o.name for o in bundle.manifest.outputs])
    chosen = [bundle.manifest.artifact(a) for a in artifacts] if artifacts else list(bundle.manifest.artifacts)
    feeds, golden = golden_data(bundle, max_npz_bytes)
    others = other_golden_sets(bundle, max_npz_bytes)
    # One isolated child serves the artifacts in turn (one interpreter start and one set of imports);
    # one that crashes or times out takes only its own verdict down, the next gets a new child.
    own_child: Optional[SharedChild] = None
    if isolate and child is None:
        from .isolate import SharedChild

        child = own_child = SharedChild(threads, timeout, max_npz_bytes)
    try:
        results = [check_artifact(bundle, art, feeds, golden, overrides, isolate, threads, timeout, max_npz_bytes,
                                  child if isolate else None, others) for art in chosen]
    finally:
        if own_child is not None:
            own_child.close()
    if not artifacts:
        results += [not_built_result(n) for n in bundle.manifest.not_built]
    for r in results:
        log.info("%s: %s %s", r.file, r.status, r.reason)
    return CheckReport(str(Path(bundle_dir)), bundle.manifest.name, bundle.manifest.target, device.describe(), results,
                       bundle.manifest.source.get("path"), bool(bundle.manifest.program))
