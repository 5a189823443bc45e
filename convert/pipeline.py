"""The conversion pipeline: one Paddle model -> one verified bundle per target.

    read source -> golden run (original model) -> normalize to legacy -> legalize
    -> per target: Lite .nb, ONNX (shared between targets with the same opset),
       quantized variants -> manifest -> host verification -> atomic rename
"""
from __future__ import annotations

import contextlib
import dataclasses
from functools import partial
import datetime as _dt
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Tuple

import numpy as np

from wherry import runtimes
from wherry.convert import (board_check, edge_export, exporters, golden, legalize, lite_export, locate_failures,
                            nms_tail, onnx_export, pir_route, source)
from wherry.convert.failures import Failures, not_built
from wherry.convert.options import ConvertOptions, preprocess_text
from wherry.convert.normalize import LegacyModel
from wherry.convert.progress import Timeline
from wherry.convert.source import source_sha256
from wherry.convert.versions import tool_versions
from wherry.convert.publish import OutputError, replace_bundle, stage_dir, work_dir
from wherry.runtimes import checker, parity, time_limit
from wherry.runtimes.bundle import (FAILED_TO_BUILD, GOLDEN_INPUTS, GOLDEN_OUTPUTS, NOT_REPRESENTABLE, REPORT,
                                    Artifact, Manifest, NotBuilt, Tolerance, content_hash)
from wherry.runtimes.errors import InputError, WherryError
from wherry.runtimes.isolate import SharedChild
from wherry.targets import Profile, load_profile

if TYPE_CHECKING:
    from wherry.runtimes.preprocess import PreprocessSpec

log = logging.getLogger(__name__)



@dataclass
class BundleResult:
    target: str
    path: Path
    manifest: Manifest
    check: Optional[checker.CheckReport]   # the host verification
    report: dict

    @property
    def not_built(self) -> List[NotBuilt]:
        return self.manifest.not_built

    @property
    def ok(self) -> bool:
        # The same rule as `wherry check` on the same bundle: a requested artifact a tool failed to build,
        # a verifiable artifact that fails, or nothing verified at all (an ARM-only bundle on an x86 host
        # whose .nb no emulated board ran) fails. An artifact whose format cannot express the model (ONNX
        # for sequence inputs) is listed, never passed, and fails nothing. --no-verify: nothing judged.
        return (not any(n.status == FAILED_TO_BUILD for n in self.not_built)
                and (self.check is None or (not self.check.failed and bool(self.check.verified))))


def _check_output_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=out_dir, prefix=".wherry-probe-")
        probe.close()
    except OSError as exc:
        raise OutputError(f"cannot write to output directory {out_dir}: {exc.strerror or exc}",
                          "choose another directory with -o") from None


def _check_names(name: Optional[str], profiles) -> None:
    """A bundle is written (and with --force replaced) at -o/NAME.TARGET: both must be plain names,
    so nothing outside -o is ever written or deleted."""
    for what, value in [("--name", name)] + [("target name", p.name) for p in profiles]:
        if value is not None and (value in ("", ".", "..") or any(c in value for c in "/\\\0")):
            raise OutputError(f"{what} {value!r} is not a plain name (no path separators, not . or ..)",
                              "name the bundle with --name and choose its folder with -o")
    names = [p.name for p in profiles]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:   # their bundles would be one folder: the second overwrote the first, both reported
        raise OutputError(f"two targets are the profile {twice[0]!r}: both bundles would be NAME.{twice[0]} and "
                          "overwrite each other", "list each target once, or give a profile file another `name`")


def _tolerances(profile: Profile, precision: str, outputs) -> Dict[str, Tolerance]:
    base = parity.default_tolerance(precision)
    override = profile.tolerances.get(precision, {})
    merged = Tolerance(**{**base.__dict__, **override})
    return {spec.name: merged for spec in outputs}


def _nb_name(profile: Profile) -> str:
    places = [p for p in profile.lite_places if p not in ("arm", "x86")]
    return "model." + "-".join([profile.arch_family] + places) + ".nb"


def convert(options: ConvertOptions) -> List[BundleResult]:
    # one isolated child verifies the artifacts of every target's bundle: one interpreter start and one
    # set of runtime imports per call (a crash still costs only its own artifact: isolate.SharedChild)
    with tempfile.TemporaryDirectory(prefix="wherry-source-") as scratch, contextlib.closing(SharedChild()) as child:
        return _convert(options, Path(scratch), child)


def _convert(options: ConvertOptions, scratch: Path, check_child: SharedChild) -> List[BundleResult]:
    timeline = Timeline()
    unknown_passes = sorted(set(options.skip_passes) - set(legalize.PASSES))
    if unknown_passes:
        raise WherryError(f"unknown legalization pass(es) {', '.join(unknown_passes)}",
                          f"passes: {', '.join(legalize.PASSES)}")
    profiles = [load_profile(t) for t in options.targets]
    _check_names(options.name, profiles)
    known = exporters.formats()
    unknown = [f for f in options.formats or () if f not in known]
    if unknown:
        raise WherryError(f"unknown format(s) {', '.join(unknown)}", f"choose from {', '.join(known)}")
    for profile in profiles:
        _target_formats(profile, options.formats)

    with timeline.step("reading model"):
        info = source.read(options.model)
    name = options.name or info.files.name
    source_files, source_notes = info.files.all_files(), []
    if options.without_nms:
        if info.format != "legacy":
            raise WherryError("--without-nms works on legacy .pdmodel programs",
                              "convert the model once without it, or export it as a legacy program")
        if info.files.params_file is None:
            raise WherryError("--without-nms needs the model's parameter file (.pdiparams) beside it",
                              "pass the model as exported, .pdmodel and .pdiparams together")
        cut = nms_tail.cut(info.files.model_file, info.files.params_file, scratch / "without-nms")
        info, source_notes = source.read(cut.model_file), cut.notes
        for note in source_notes:
            log.warning(note)
    log.info("model %s: %s format, inputs %s, outputs %s", name, info.format,
             ", ".join(s.describe() for s in info.inputs), ", ".join(s.describe() for s in info.outputs))

    out_dir = Path(options.out)
    _check_output_dir(out_dir)
    finals = {p.name: out_dir / f"{name}.{p.name}" for p in profiles}
    existing = [str(p) for p in finals.values() if p.exists()]
    if existing and not options.force:
        raise OutputError(f"bundle {existing[0]} already exists", "pass --force to replace it, or choose -o")

    # Inputs are validated before any long work starts.
    preprocess_spec = None
    if options.inputs and options.images:
        raise WherryError("give golden inputs either as --inputs or as --images, not both")
    quant = _prepare_quantization(options, profiles, info)   # first: the calibration data may give golden inputs
    golden_text = None
    if options.images:
        feeds, preprocess_spec = golden.image_inputs(Path(options.images), info.inputs, preprocess_text(options.preprocess))
    elif options.inputs:
        golden.sequence_inputs([s for s in info.inputs if s.name in options.lod], options.lod, {})
        feeds = golden.user_inputs(Path(options.inputs), info.inputs, options.lod)
        if options.shapes:
            log.warning("--shape is ignored when --inputs gives real data")
    elif quant.samples is not None and not any(s.lod_level for s in info.inputs):
        from wherry.convert.quantize.calibration import MAX_CALIB_SAMPLES
        calib_name = options.calib.name if options.calib is not None else "--calib"
        feeds, quant.calib, golden_text = golden.from_calibration(quant.samples, info.inputs, calib_name,
                                                                  MAX_CALIB_SAMPLES)
        logging.getLogger("wherry").info("golden inputs: %s", golden_text)
        if options.shapes:
            log.warning("--shape is ignored: the golden inputs come from --calib")
    else:
        feeds = golden.random_inputs(info.inputs, options.golden_shapes, options.seed, options.lod)
        quantized = sorted(quant.wanted - {"fp32"})
        if quantized:   # said before the long work: the user can still stop and pass real data
            quant.random_warning = (golden.RANDOM_GOLDEN_WARNING.format(precisions=", ".join(quantized))
                                    + "; " + golden.RANDOM_GOLDEN_HINT)
            log.warning("warning: %s", quant.random_warning)
    quant.samples = None   # split into golden and calibration feeds; not needed any more
    golden_origin = golden.golden_origin(options.inputs, options.images, golden_text is not None)
    if options.verify:   # the check child starts and imports its runtimes while the golden run and exports go on
        check_child.prewarm(["onnxruntime", "paddlelite"])

    with timeline.step("golden run (Paddle Inference on the original model)"):
        start = time.perf_counter()
        reference_model = info.files.model_file if info.format != "paddle1" else info.files.param_dir
        try:
            reference, golden_seconds, golden_paddle = golden.timed_reference_outputs(reference_model, feeds)
        except WherryError as exc:
            # calibration runs one sample at a time; a model whose batch is declared dynamic may still take
            # only one (detectors with per-image shape inputs): golden data from --calib then is one sample
            if golden_text is None or len(next(iter(feeds.values()))) == 1:
                raise
            log.warning("the golden run on %d calibration samples at once failed (%s); retrying with one sample",
                        len(next(iter(feeds.values()))), exc.message.splitlines()[0])
            feeds = {k: v[:1] for k, v in feeds.items()}
            golden_text = golden_text.replace(f"{golden.GOLDEN_FROM_CALIB} sample(s)", "1 sample", 1) + \
                " (one: the model failed on a batch)"
            reference, golden_seconds, golden_paddle = golden.timed_reference_outputs(reference_model, feeds)
        timeline.book_tool("paddle inference", time.perf_counter() - start)
    if golden_paddle != tool_versions()["paddle"]:   # a Paddle 1.x op the installed Paddle dropped (legacy_paddle)
        source_notes = [*source_notes, f"golden outputs computed by Paddle {golden_paddle}: the installed Paddle "
                                       f"{tool_versions()['paddle']} cannot run an op of the model"]
    # an artifact that loops (a damaged .nb) is stopped after a limit derived from this run (runtimes/time_limit.py)
    check_child.set_timeout(time_limit.choose(time_limit.AUTO if options.check_timeout is None
                                              else options.check_timeout, golden_seconds))
    other_golden = _other_golden_sets(options, info, feeds, timeline, golden_origin)
    if quant.eval_data is not None:
        with timeline.step("evaluating the original model on --eval data"):
            quant.reference_accuracy = _reference_accuracy(info, quant.eval_data)
    warnings = golden.degenerate_outputs(reference)
    for w in warnings:
        log.warning(w)
    if quant.random_warning:
        warnings.insert(0, quant.random_warning)

    with work_dir(out_dir) as work:
        with timeline.step("preparing a legacy program" if info.format != "legacy" else "checking program"):
            legacy = pir_route.to_legacy_or_pir(info, work, options.formats)
        legal_model = legal_params = None
        changes: List[str] = []
        if legacy.model_file is not None:  # None: an untranslated PIR program, ONNX straight from PIR
            with timeline.step("legalizing for Lite and paddle2onnx"):
                passes = [p for p in legalize.PASSES if p not in options.skip_passes]
                assert legacy.params_file is not None, "normalize writes a legacy program with its params"
                legal_model, legal_params, changes = legalize.legalize(legacy.model_file, legacy.params_file,
                                                                       work / "legal", passes)
        shared = _Shared(info, name, feeds, reference, legacy, legal_model, legal_params, changes, warnings, quant,
                         preprocess_spec, work, timeline, source_files=source_files, source_notes=source_notes,
                         check_child=check_child, golden_origin=golden_origin, golden_text=golden_text,
                         other_golden=other_golden, golden_seconds=golden_seconds, golden_paddle=golden_paddle)
        shared.detections = [info.outputs[c].name for c in source.detection_outputs(legacy.model_file)
                             if c < len(info.outputs)] if legacy.model_file is not None else []
        built: List[_Built] = []
        # Targets whose .nb files go to the emulated board are built first, and their boards are waited for
        # last: each board's check runs beside the exports and host checks of every target.
        order = sorted(profiles, key=lambda p: not (options.verify and board_check.runtime_built(p)))
        try:
            for profile in order:
                built.append(_build_bundle(profile, options, shared, finals[profile.name]))
            results = {b.profile.name: _finish_bundle(b, shared) for b in built}
            # Every target's bundle is complete (and --require-all satisfied) before any is published.
            for b in built:
                _publish(b.stage, b.final, options.force)
        except BaseException:
            for b in built:
                b.discard()
            raise
        return [results[profile.name] for profile in profiles]


@dataclass
class _Shared:
    """What every target of one convert call shares: one golden run, one legalized program, one ONNX per opset."""
    info: source.ModelInfo
    name: str
    feeds: dict
    reference: dict
    legacy: LegacyModel
    legal_model: Optional[Path]          # None: an untranslated PIR program (ONNX straight from PIR)
    legal_params: Optional[Path]
    changes: List[str]
    warnings: List[str]
    quant: "_Quantization"
    preprocess_spec: Optional["PreprocessSpec"]
    work: Path
    timeline: Timeline
    onnx_by_opset: Dict[int, object] = field(default_factory=dict)   # opset -> Path, or the export's WherryError
    detections: List[str] = field(default_factory=list)  # outputs made by NMS: compared as sets of detections
    source_files: List[Path] = field(default_factory=list)  # the user's model files (hashed in the manifest)
    source_notes: List[str] = field(default_factory=list)   # what was done to the source first (--without-nms)
    check_child: Optional[SharedChild] = None   # verifies every target's artifacts (convert())
    golden_origin: str = "random"               # user | images | calib | random (manifest.golden.origin)
    golden_text: Optional[str] = None           # which calibration samples the golden inputs are, if from --calib
    other_golden: List[tuple] = field(default_factory=list)   # (shapes, feeds, reference) at other input shapes
    golden_seconds: Optional[float] = None      # the golden run's time (manifest.golden.seconds)
    golden_paddle: Optional[str] = None         # the Paddle that ran it (manifest.golden.paddle; legacy_paddle)
    # (target, file) -> a tool's simulation of its artifact judged against golden (rknn: no NPU here)
    simulations: Dict[tuple, dict] = field(default_factory=dict)

    def untranslated(self, what: str) -> WherryError:
        """Why ``what`` cannot be built: the PIR program has no legacy form (its untranslated ops named)."""
        if isinstance(self.legacy, pir_route.UntranslatedPir):
            return pir_route.untranslated_error(self.legacy, what)
        return WherryError(f"cannot build {what}: there is no legacy program", "report the model to wherry")

    def legal_program(self, what: str) -> Tuple[Path, Path]:
        """(model, params) of the legalized legacy program that ``what`` is built from."""
        if self.legal_model is None or self.legal_params is None:
            raise self.untranslated(what)
        return self.legal_model, self.legal_params


def _other_golden_sets(options: ConvertOptions, info, feeds: dict, timeline, origin: str) -> List[tuple]:
    """(shapes, feeds, reference) of the golden sets beyond the first: the --shape sets the user named, else,
    for random golden inputs of a model with dynamic non-batch dims, one at a smaller shape. A shape the
    original model itself cannot run is an error when the user named it, and dropped with a warning when
    wherry chose it."""
    if origin != "random":   # real data (--inputs, --images, or held out of --calib): the data's shape
        if options.other_shapes:
            log.warning("--shape is ignored when the golden inputs are real data")
        return []
    chosen = list(options.other_shapes)
    if not chosen:
        main = {name: tuple(value.shape) for name, value in feeds.items() if name in {s.name for s in info.inputs}}
        chosen = golden.default_other_shapes(info.inputs, main)
    sets = []
    for index, shapes in enumerate(chosen, start=1):
        text = checker.shape_text(shapes)
        other_feeds = golden.random_inputs(info.inputs, shapes, options.seed + index, options.lod)
        with timeline.step(f"golden run at {text}"):
            try:
                reference = golden.reference_outputs(info.files.model_file if info.format != "paddle1"
                                                     else info.files.param_dir, other_feeds)
            except WherryError as exc:
                if options.other_shapes:
                    raise InputError(f"the original model does not run at --shape {text}: {exc.message}",
                                     "give shapes the model accepts (its dynamic dims, e.g. multiples of its "
                                     "stride)") from None
                log.warning("proven at one input shape only: the original model does not run at %s (%s)",
                            text, exc.message.splitlines()[0])
                continue
        sets.append(({k: [int(d) for d in v] for k, v in shapes.items() if k in other_feeds}, other_feeds,
                     reference))
    return sets


def _target_formats(profile: Profile, formats: Optional[List[str]]) -> List[str]:
    chosen = [f for f in profile.artifacts if formats is None or f in formats]
    if not chosen:
        raise WherryError(f"target {profile.name} builds none of the requested formats {', '.join(formats or [])}",
                          f"it builds {', '.join(profile.artifacts)}")
    return chosen


@dataclass
class _Built:
    """A target's bundle, staged and checked on this host; its board check may still be running."""
    profile: Profile
    stage: Path
    final: Path
    artifacts: List[Artifact]
    manifest: Manifest
    check: Optional[checker.CheckReport]
    extra: List[str]
    quant_notes: List[str]
    board: Optional[board_check.BoardCheck]
    coverage: Dict[str, dict] = field(default_factory=dict)   # .nb file -> its int8 kernel counts (quantize)
    located: Dict[str, dict] = field(default_factory=dict)    # failed artifact -> where it leaves the model (--locate)
    locate: bool = False                 # --locate: also search what fails on the emulated board
    debug_model: Optional[str] = None    # the source model debug needs (None: the bundle keeps its program)

    def discard(self) -> None:
        if self.board is not None:
            self.board.cancel()
        shutil.rmtree(self.stage, ignore_errors=True)


def _finish_bundle(built: _Built, shared: _Shared) -> BundleResult:
    """Wait for the board's verdicts, then write them into the manifest and the report."""
    emulated = None
    if built.board is not None:
        emulated, built.board = built.board.finish(), None
        built.manifest.write(built.stage)  # with the board's verdicts among the artifacts' notes
        if built.check is not None:   # the bundle's verdict counts the .nb files the board ran, as check would
            built.check.adopt(emulated, "the emulated aarch64 board (qemu user-mode, Paddle Lite's ARM kernels)",
                              board_check.DEVICE)
            if built.locate:   # an ARM .nb that failed on the board is searched there
                failed = [f for f in locate_failures.to_search(built.check) if f in emulated]
                built.located.update(_locate(built.profile, shared, built.stage, failed, built.debug_model,
                                             board_check.DEVICE))
    report = _write_report(built.profile, shared, built.stage, built.artifacts, built.check, built.extra,
                           built.quant_notes, built.manifest.not_built, emulated, built.coverage, built.located)
    return BundleResult(built.profile.name, built.final, built.manifest, built.check, report)


def _build_bundle(profile: Profile, options: ConvertOptions, shared: _Shared, final: Path) -> _Built:
    """Build one target's bundle in a hidden staging directory and check it on this host; unpublished."""
    formats = _target_formats(profile, options.formats)
    precisions = list(options.precisions or profile.precisions)
    stage = stage_dir(final)
    board: Optional[board_check.BoardCheck] = None

    def board_bundle(folder, nbs):   # golden data and a manifest naming only the .nb files, as in the bundle
        _judge_detections_as_sets(nbs, shared.detections)
        _write_manifest(profile, options, shared, folder, nbs, [])

    def start_board(built):   # the ARM .nb files on the emulated board, beside the rest of the work
        return board_check.start(profile, built, stage, shared.work, shared.timeline, board_bundle) \
            if options.verify else None

    try:
        stage.chmod(0o777 & ~_umask())  # mkdtemp makes it private; a bundle is an ordinary directory
        failures = Failures(disks=[Path(options.out), shared.work])
        extra = [p for p in precisions if p != "fp32"]
        artifacts = _fp32_nb(profile, options, shared, stage, formats, failures)
        if not extra:   # every .nb of the target exists: the board starts while ONNX is exported and checked
            board = start_board(artifacts)
        artifacts += _fp32_onnx(profile, shared, stage, formats, failures)
        fp32_onnx = stage / "model.onnx" if any(a.file == "model.onnx" for a in artifacts) else None
        quant_notes: List[str] = []
        coverage: Dict[str, dict] = {}
        programs: Dict[str, Tuple[Path, Path]] = {}   # int8 .nb -> the quantized program opt built it from
        if extra:
            shared.legal_program("quantized artifacts")   # an untranslated PIR program has none to quantize
        if extra:
            artifacts += _quantized_artifacts(profile, options, shared, stage, formats, extra, fp32_onnx, artifacts,
                                              quant_notes, failures, coverage, programs)
        edge = edge_export.build(profile, shared, stage, formats, precisions, failures,
                                 lambda: _shared_onnx(profile, shared), partial(_artifact, profile=profile,
                                                                               info=shared.info))
        artifacts += edge
        if "fp32" not in precisions:
            for art in [a for a in artifacts if a.precision == "fp32"]:
                (stage / art.file).unlink()
            artifacts = [a for a in artifacts if a.precision != "fp32"]
            failures.drop_precision("fp32")
        if extra:
            board = start_board(artifacts)
        failures.raise_if_nothing_built(artifacts)
        _judge_detections_as_sets(artifacts, shared.detections)
        if failures and options.require_all:
            raise WherryError(f"{len(failures)} requested artifact(s) could not be built for {profile.name}: "
                              + "; ".join(f"{n.file} ({n.status}, {n.tool}: {n.reason})" for n in failures.records),
                              "without --require-all wherry ships the artifacts that were built and lists the rest "
                              "in manifest.json and report.json")
        kept_program = _keep_program(options, shared, stage,
                                     {a.file: programs[a.file] for a in artifacts if a.file in programs})
        manifest = _write_manifest(profile, options, shared, stage, artifacts, failures.records, kept_program)
        check = None
        if options.verify:
            with shared.timeline.step(f"[{profile.name}] verifying artifacts on this host"):
                check = checker.check(stage, child=shared.check_child)
            if edge:
                edge_export.check(profile, shared, stage, edge, check)
                manifest.write(stage)   # with the tool environments' and the board's verdicts among the notes
            _explain_calibration_failures(check, artifacts, shared)
        model = None if kept_program is not None else str(options.model)
        located = _locate(profile, shared, stage, locate_failures.to_search(check), model) \
            if options.locate != "never" else {}
        if check is not None:
            check.bundle = str(final)  # the report outlives the staging directory
        return _Built(profile, stage, final, artifacts, manifest, check, extra, quant_notes, board, coverage,
                      located, options.locate != "never", model)
    except BaseException:
        if board is not None:
            board.cancel()
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _locate(profile: Profile, shared: _Shared, stage: Path, files: List[str], model: Optional[str],
            device: Optional[str] = None) -> Dict[str, dict]:
    """--locate: the first-divergence search on the artifacts that failed (on this host, or on ``device``),
    before publishing. ``model``: the source, when the bundle keeps no program."""
    if not files:
        return {}
    where = f" on {device}" if device else ""
    with shared.timeline.step(f"[{profile.name}] locating where {', '.join(files)} leave the model{where} "
                              "(wherry debug)"):
        return locate_failures.locate(stage, files, model, device=device)


def _fp32_nb(profile, options, shared: _Shared, stage: Path, formats, failures: Failures) -> List[Artifact]:
    timeline, info = shared.timeline, shared.info
    artifacts = []
    if "nb" in formats and shared.legal_model is None:  # an untranslated PIR program: Lite reads only legacy ones
        error = shared.untranslated("a .nb")
        failures.add(not_built(error, file=_nb_name(profile), fmt="nb", precision="fp32", arch=profile.arch_family,
                               tool=pir_route.TRANSLATOR), error)
        formats = [f for f in formats if f != "nb"]
    if "nb" in formats:
        nb_name = _nb_name(profile)
        places = ",".join(profile.lite_places)

        def build_nb():
            with timeline.step(f"[{profile.name}] Paddle Lite opt ({places})"):
                built = lite_export.export_nb(shared.legal_model, shared.legal_params, stage / nb_name,
                                              profile.lite_places)
                timeline.book_tool("paddle lite opt", built.seconds)
            return built

        result = failures.attempt(build_nb, file=nb_name, fmt="nb", precision="fp32", arch=profile.arch_family,
                                  tool=lite_export.TOOL, places=places, leftover=stage / nb_name)
        if result is not None:
            notes = list(result.notes)
            if profile.arch_family != "x86" and options.verify and not board_check.runtime_built(profile):
                with timeline.step(f"[{profile.name}] checking the Lite program through an x86 twin"):
                    notes.append(_x86_twin_check(shared, _tolerances(profile, "fp32", info.outputs)))
            artifacts.append(_artifact(stage, nb_name, "nb", "fp32", profile.arch_family, profile, info,
                                       places=places, notes=notes))
    return artifacts


def _fp32_onnx(profile, shared: _Shared, stage: Path, formats, failures: Failures) -> List[Artifact]:
    info, artifacts = shared.info, []
    sequences = [s for s in info.inputs if s.lod_level]
    if "onnx" in formats and sequences:
        failures.add(onnx_not_representable(sequences, "model.onnx", "fp32"))
    elif "onnx" in formats:
        onnx = _shared_onnx(profile, shared)
        if isinstance(onnx, WherryError):
            failures.add(not_built(onnx, file="model.onnx", fmt="onnx", precision="fp32", arch="any",
                                   tool=onnx_export.TOOL), onnx)
        else:
            shutil.copyfile(onnx, stage / "model.onnx")
            artifacts.append(_artifact(stage, "model.onnx", "onnx", "fp32", "any", profile, info))
    return artifacts


def onnx_not_representable(sequences, file: str, precision: str) -> NotBuilt:
    """ONNX cannot carry a sequence (LoD) input: said once, with the reason, instead of failing the conversion."""
    names = ", ".join(f"{s.name!r} (LoD level {s.lod_level})" for s in sequences)
    return NotBuilt(file=file, format="onnx", precision=precision, arch="any", tool="ONNX",
                    status=NOT_REPRESENTABLE,
                    reason=f"input {names} is a sequence (LoD) tensor: its rows are variable-length sequences "
                           "described by lengths, and ONNX tensors have no way to carry them",
                    hint="the Paddle Lite .nb takes sequence inputs; for ONNX, re-export the model with padded "
                         "inputs and explicit lengths")


def _judge_detections_as_sets(artifacts, detections) -> None:
    """NMS outputs are sets of detections: their tolerance says so (recorded in the manifest for every device)."""
    for art in artifacts:
        for name in detections:
            if name in art.tolerance:  # a new object: outputs may share one Tolerance
                art.tolerance[name] = dataclasses.replace(art.tolerance[name],
                                                          match_iou=parity.DETECTION_MATCH_IOU.get(art.precision, 0.5))


def _shared_onnx(profile, shared: _Shared):
    """The fp32 ONNX export for the profile's opset, made once per convert call (or the error it gave)."""
    opset, info = profile.onnx_opset, shared.info
    if opset not in shared.onnx_by_opset:
        path = shared.work / f"model.opset{opset}.onnx"
        try:
            with shared.timeline.step(f"[{profile.name}] paddle2onnx (opset {opset})"):
                names = {"input_names": [s.name for s in info.inputs], "output_names": [s.name for s in info.outputs]}
                if shared.legal_model is not None and shared.legal_params is not None:
                    result = onnx_export.export_onnx(shared.legal_model, shared.legal_params, path, opset, **names)
                else:  # an untranslated PIR program: ONNX straight from it
                    assert info.files.params_file is not None, "a PIR program has its .pdiparams"
                    result = pir_route.export_onnx(info.files.model_file, info.files.params_file, path, opset,
                                                   **names)
                shared.timeline.book_tool("paddle2onnx", result.seconds)
            shared.onnx_by_opset[opset] = path
        except WherryError as exc:
            shared.onnx_by_opset[opset] = exc
    return shared.onnx_by_opset[opset]


def _quantized_artifacts(profile, options, shared: _Shared, stage, formats, extra, fp32_onnx, artifacts,
                         quant_notes, failures: Failures, coverage: Dict[str, dict],
                         programs: Dict[str, Tuple[Path, Path]]) -> List[Artifact]:
    from wherry.convert import quantize
    from wherry.convert.quantize import evaluate

    quant, timeline = shared.quant, shared.timeline
    legal_model, legal_params = shared.legal_program("quantized artifacts")
    with timeline.step(f"[{profile.name}] quantizing ({', '.join(extra)})"):
        made = quantize.build_quantized(
            stage_dir=stage, precisions=extra, model_file=legal_model, params_file=legal_params,
            fp32_onnx=fp32_onnx, input_specs=shared.info.inputs, output_specs=shared.info.outputs,
            lite_places=profile.lite_places if "nb" in formats else None, calib=quant.calib,
            calib_method=options.calib_method, programs=programs,
            work=shared.work / f"quant-{profile.name}", notes=quant_notes, failures=failures, coverage=coverage,
            onnx_requested="onnx" in formats and not any(s.lod_level for s in shared.info.inputs))
    int8_onnx = next((a for a in made if a.precision == "int8" and a.format == "onnx"), None)
    if options.max_drop is not None and int8_onnx is not None and fp32_onnx is not None and quant.calib:
        with timeline.step(f"[{profile.name}] checking int8 accuracy against --max-drop {options.max_drop}"):
            lines, kept_in_float = evaluate.guard_int8(stage, int8_onnx, fp32_onnx, quant.calib, options.max_drop,
                                                       quant.eval_data, quant.reference_accuracy,
                                                       shared.work / f"guard-{profile.name}", options.calib_method)
            quant_notes += lines
        int8_nb = next((a for a in made if a.precision == "int8" and a.format == "nb"), None)
        if kept_in_float and int8_nb is not None:   # the .nb keeps the same layers in float (Paddle PTQ's skip list)
            with timeline.step(f"[{profile.name}] int8 .nb with {len(kept_in_float)} layer(s) in float (--max-drop)"):
                if not quantize.keep_in_float(stage, int8_nb, legal_model, legal_params,
                                              profile.lite_places, quant.calib, kept_in_float,
                                              shared.work / f"max-drop-{profile.name}", options.calib_method,
                                              coverage, quant_notes, programs):
                    made.remove(int8_nb)
    return made


# `--debug-program auto` keeps the program when its files are at most this large together (it doubles the
# weights a bundle carries; beyond this, ask for it with `always`)
DEBUG_PROGRAM_AUTO_BYTES = 32 << 20
DEBUG_PROGRAM_DIR = "debug"


def _keep_program(options: ConvertOptions, shared: _Shared, stage: Path,
                  quantized: Optional[Dict[str, Tuple[Path, Path]]] = None) -> Optional[dict]:
    """Copy the program that fed the exporters into the bundle, so `wherry debug BUNDLE` needs no --model;
    the manifest's record of it (hashed like every other file), or None when it is not kept. ``quantized``
    (int8 .nb file -> the quantized program opt built it from) are kept beside it, so that debug can measure
    each layer's int8 damage on the ARM kernels (`wherry debug BUNDLE --device emulated-aarch64`)."""
    if options.debug_program == "never" or shared.legal_model is None or shared.legal_params is None:
        return None   # None: an untranslated PIR program
    files = (shared.legal_model, shared.legal_params)
    size = sum(f.stat().st_size for f in files)
    if options.debug_program == "auto" and size > DEBUG_PROGRAM_AUTO_BYTES:
        log.info("the program (%.1f MB) is not kept in the bundle (--debug-program auto keeps up to %d MB); "
                 "wherry debug will need --model", size / 1e6, DEBUG_PROGRAM_AUTO_BYTES >> 20)
        return None
    (stage / DEBUG_PROGRAM_DIR).mkdir()

    def keep(model: Path, params: Path, stem: str) -> Dict[str, str]:
        kept = {}
        for key, src, name in (("model", model, f"{stem}.pdmodel"), ("params", params, f"{stem}.pdiparams")):
            relative = f"{DEBUG_PROGRAM_DIR}/{name}"
            shutil.copyfile(src, stage / relative)
            kept.update({key: relative, f"{key}_sha256": content_hash(stage / relative)})
        return kept
    record: Dict[str, Any] = keep(files[0], files[1], "model")
    if quantized:
        record["quantized"] = {file: keep(model, params, Path(file).stem) for file, (model, params) in quantized.items()}
    return record


def _write_manifest(profile, options, shared: _Shared, stage: Path, artifacts, missing,
                    program: Optional[dict] = None) -> Manifest:
    info = shared.info
    (stage / "golden").mkdir()
    np.savez(stage / GOLDEN_INPUTS, **shared.feeds)
    np.savez(stage / GOLDEN_OUTPUTS, **shared.reference)
    others = []
    for index, (shapes, feeds, reference) in enumerate(shared.other_golden, start=1):
        files = {"inputs": f"golden/inputs.{index}.npz", "outputs": f"golden/outputs.{index}.npz"}
        np.savez(stage / files["inputs"], **feeds)
        np.savez(stage / files["outputs"], **reference)
        others.append({**files, "shapes": shapes})
    manifest = Manifest(
        name=shared.name, inputs=info.inputs, outputs=info.outputs, artifacts=artifacts,
        # path: the model as converted, so a failed check can name the exact `wherry debug` command
        source={"format": info.format, "translated": shared.legacy.translated, "path": str(Path(options.model).resolve()),
                "files": [{"name": p.name, "sha256": source_sha256(p)} for p in shared.source_files],
                "legalized": shared.changes, "notes": shared.source_notes + shared.legacy.notes},
        tools={**tool_versions(), "onnx_opset": profile.onnx_opset, **edge_export.versions(artifacts)},
        target={"name": profile.name, "arch": profile.arch, "os": profile.os},
        golden={"inputs": GOLDEN_INPUTS, "outputs": GOLDEN_OUTPUTS,
                "origin": shared.golden_origin, "seed": options.seed,
                **({"seconds": round(shared.golden_seconds, 4)} if shared.golden_seconds is not None else {}),
                **({"paddle": shared.golden_paddle} if shared.golden_paddle else {}),
                **({"from": shared.golden_text} if shared.golden_text else {}),
                **({"other_shapes": others} if others else {})},
        preprocess=_preprocess_record(options, shared),
        program=program,
        not_built=list(missing),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    manifest.write(stage)
    return manifest


def _preprocess_record(options, shared: _Shared) -> Optional[dict]:
    """The image preprocessing a device must repeat: that of --images, else that of an image --calib folder."""
    if shared.preprocess_spec is not None:
        record = shared.preprocess_spec.to_json()
        record["input"] = shared.info.inputs[0].name
        return record
    from wherry.convert.quantize.calibration import preprocess_record
    return preprocess_record(options.calib, shared.info.inputs, preprocess_text(options.preprocess))


def _write_report(profile, shared: _Shared, stage: Path, artifacts, check, extra, quant_notes, missing,
                  emulated: Optional[dict] = None, coverage: Optional[Dict[str, dict]] = None,
                  located: Optional[Dict[str, dict]] = None) -> dict:
    warnings = shared.warnings + [f"{a.file}: {n}" for a in artifacts for n in a.notes if "FAIL" in n] \
        + [f"{n.file}: not built ({n.tool}): {n.reason.splitlines()[0]}" for n in missing]
    report = {"model": shared.name, "target": profile.name, "timings": shared.timeline.to_json(),
              "warnings": warnings, "legalized": shared.changes, "artifacts": [a.to_json() for a in artifacts],
              "not_built": [n.to_json() for n in missing],
              "verification": check.to_json() if check is not None else None}
    if located:   # --locate: where each failed artifact leaves the model (file -> locate_failures.record)
        report["located"] = located
    simulated = {file: record for (target, file), record in shared.simulations.items() if target == profile.name}
    if simulated:   # a tool's simulation of the compiled graph (file -> check result + "where"): not a device's run
        report["simulated_verification"] = simulated
    if emulated is not None:  # ARM .nb results of the emulated aarch64 board (file -> check result)
        report["emulated_verification"] = emulated
        hint = calibration_range_hint(shared)
        int8 = {a.file for a in artifacts if a.precision == "int8"}
        warnings += [f"{file} failed on the emulated board: {hint}" for file, result in emulated.items()
                     if hint and file in int8 and (result or {}).get("status") == checker.FAILED]
    quant = shared.quant
    if extra or quant.eval_data is not None:
        from wherry.convert.quantize import evaluate
        with shared.timeline.step(f"[{profile.name}] measuring size, latency and accuracy"):
            task = quant.eval_data[1] if quant.eval_data is not None else None
            report["quantization"] = {
                "reference_accuracy": quant.reference_accuracy, "notes": quant_notes,
                "task": task.kind if task else None, "metric": task.metric if task else None,
                "eval_samples": task.count if task else None,
                "rows": evaluate.measure(stage, artifacts, shared.feeds, quant.eval_data, quant.reference_accuracy,
                                         coverage, board=bool(emulated))}
    (stage / REPORT).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


def _explain_calibration_failures(check, artifacts, shared: _Shared) -> None:
    """An int8 artifact that fails on golden inputs outside the calibration range: say so, and the fix."""
    hint = calibration_range_hint(shared)
    if hint is None:
        return
    int8 = {a.file for a in artifacts if a.precision == "int8"}
    for result in check.results:
        if result.file in int8 and result.status == checker.FAILED:
            result.reason = f"{result.reason}; {hint}" if result.reason else hint


def calibration_range_hint(shared: _Shared) -> Optional[str]:
    """Why an int8 verdict may mean little: golden inputs outside the range of the calibration data."""
    if shared.quant.calib is None:
        return None
    outside = golden.outside_calibration(shared.feeds, shared.quant.calib)
    if not outside:
        return None
    return ("the golden inputs lie outside the calibration data's range (" + "; ".join(outside) + "): int8 "
            "activation ranges come from --calib, so this compares inputs the artifact was not calibrated for; "
            "pass real inputs like the calibration data with --inputs (or leave --inputs out: golden inputs are "
            "then taken from --calib)")


@dataclass
class _Quantization:
    calib: Optional[dict] = None
    eval_data: Optional[tuple] = None          # (feeds, tasks.Task)
    reference_accuracy: Optional[float] = None  # the original model's task metric (top-1 %, CER %, F1 %, mIoU %)
    samples: Optional[dict] = None             # every calibration sample, before golden inputs are split off
    wanted: set = field(default_factory=set)   # every precision asked for, over all targets
    random_warning: Optional[str] = None       # random golden inputs with a quantized precision


def _prepare_quantization(options, profiles, info) -> _Quantization:
    """Load and check calibration / evaluation data before any long work starts."""
    from wherry.convert.quantize import calibration

    quant = _Quantization()
    wanted = quant.wanted = {p for prof in profiles for p in (options.precisions or prof.precisions)}
    if options.calib:
        quant.samples = calibration.load_samples(options.calib, info.inputs, preprocess_text(options.preprocess),
                                                 extra=golden.GOLDEN_FROM_CALIB)
        quant.calib = {k: v[:calibration.MAX_CALIB_SAMPLES] for k, v in quant.samples.items()}
    if wanted - {"fp32"}:
        from wherry.convert.quantize import check_precisions
        check_precisions(sorted(wanted), quant.calib)
    if options.eval:
        quant.eval_data = calibration.load_eval(options.eval, info.inputs)
        quant.eval_data[1].check_fits(info.outputs[0].shape)
    if options.max_drop is not None and "int8" not in wanted:
        raise WherryError("--max-drop guards int8 artifacts, and no int8 precision was asked for",
                          "add --precision int8 (with --calib), or drop --max-drop")
    if options.max_drop is not None and not any("onnx" in _target_formats(p, options.formats) for p in profiles):
        # the bound is measured on the int8 ONNX on this host; the .nb then keeps the same layers in float
        raise WherryError("--max-drop measures int8 accuracy on the int8 ONNX artifact, and no ONNX was asked for",
                          "add onnx to --format (the .nb then keeps the layers the ONNX keeps in float), or drop "
                          "--max-drop")
    return quant


def _reference_accuracy(info, eval_data) -> float:
    """The original model's task metric on the --eval data (Paddle Inference): what artifacts are judged by."""
    from wherry.convert.quantize.evaluate import outputs_on

    model = info.files.model_file if info.format != "paddle1" else info.files.param_dir
    return round(eval_data[1].score(outputs_on(str(model), eval_data[0], backend="paddle", isolate=True)), 2)


def _x86_twin_check(shared: _Shared, tolerances) -> str:
    """An ARM .nb cannot run here, but the program Lite optimized can: build the same program for x86
    and compare it with the golden outputs. This proves legalization and Lite's graph passes kept the
    model's meaning; only the ARM kernels themselves stay unverified on this host."""
    twin = shared.work / "twin.x86.nb"
    reference = shared.reference
    if not twin.is_file():
        try:
            result = lite_export.export_nb(*shared.legal_program("an x86 twin"), twin, ["x86"])
        except WherryError as exc:
            return f"x86 twin of this program could not be built here: {exc.message.splitlines()[0]}"
        shared.timeline.book_tool("paddle lite opt", result.seconds)
    try:
        with runtimes.open(str(twin), isolate=True) as session:
            outputs = session.run(shared.feeds)
    except WherryError as exc:
        return f"x86 twin of this program could not run here: {exc.message.splitlines()[0]}"
    if set(outputs) != set(reference) and len(outputs) == len(reference):
        outputs = dict(zip(reference, outputs.values()))
    results = parity.compare(reference, outputs, tolerances)
    worst = max(results, key=lambda r: r.max_abs or 0.0)
    verdict = "pass" if all(r.passed for r in results) else "FAIL"
    return (f"x86 twin of the same Lite program vs golden: {verdict} (max abs {worst.max_abs:.2e}, "
            f"cosine {worst.cosine:.6f}); ARM kernels themselves not verifiable on this host")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _artifact(stage, file, fmt, precision, arch, profile, info, places=None, notes=None) -> Artifact:
    path = stage / file
    return Artifact(file=file, format=fmt, precision=precision, arch=arch, size=path.stat().st_size,
                    sha256=content_hash(path), places=places,
                    tolerance=_tolerances(profile, precision, info.outputs), notes=list(notes or []))


def _publish(stage: Path, final: Path, force: bool) -> None:
    """Move the finished bundle into place; an old bundle is replaced only as a whole."""
    if final.exists() and not force:
        raise OutputError(f"bundle {final} already exists", "pass --force to replace it")
    replace_bundle(stage, final)


