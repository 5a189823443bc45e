"""The `wherry` command line: convert, inspect, check, run, bench, targets, zoo."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import List, Optional

from wherry.runtimes.cli import add_global_flags, emit_json
from wherry.runtimes.errors import WherryError

log = logging.getLogger("wherry")

EPILOG = """examples:
  wherry convert --example                       convert and verify the bundled digits model
  wherry convert model.pdmodel -t rpi4 -o out    bundle for a Raspberry Pi 4 (.nb + .onnx + golden data)
  wherry convert model.json -t desktop-x86_64 -t rpi4 --shape x=1,3,224,224
  wherry inspect inference.pdmodel               inputs, outputs, ops and Lite op support per target
  wherry check out/model.rpi4                    re-check a bundle against its golden outputs
  wherry check out/model.rpi4 --device emulated-aarch64     ... on an emulated aarch64 board (qemu)
  wherry check out/model.rpi4 --device http://board:8080    ... on a board running `python -m wherry.runtimes serve`
  wherry debug out/model.rpi4 --model model.pdmodel          first layer where an artifact leaves the model
  wherry zoo zoo.toml -j 2                       convert + verify every model x target of a zoo file (docs/zoo.md)

global options (-v, -q) also work after the command; every command takes --json (docs/json.md).
"""


def _split(values: Optional[List[str]]) -> Optional[List[str]]:
    if not values:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _add_convert(sub):
    p = sub.add_parser("convert", help="convert a Paddle model into a verified bundle",
                       description="Convert a Paddle inference model (legacy .pdmodel, Paddle 3 PIR .json or a "
                                   "Paddle 1.x directory) into a bundle of Paddle Lite .nb and ONNX artifacts with "
                                   "golden outputs, and verify every artifact that can run on this machine.")
    p.add_argument("model", nargs="?", help="model directory, model file (.pdmodel/.json/__model__) or file prefix")
    p.add_argument("--example", action="store_true", help="convert the bundled digits CNN (real data)")
    p.add_argument("-t", "--target", action="append", metavar="TARGET",
                   help="target profile name or .toml file; repeat for several (default: desktop-x86_64)")
    p.add_argument("--format", action="append", metavar="FMT", help="artifact formats: nb,onnx (default: the target's)")
    p.add_argument("-o", "--out", default="out", help="output directory (default: ./out)")
    p.add_argument("--name", help="bundle name (default: derived from the model path)")
    p.add_argument("--inputs", type=Path, help="golden inputs: .npz with one array per model input")
    p.add_argument("--images", type=Path, metavar="DIR",
                   help="golden inputs from a folder of real images (a one-input image model), see --preprocess")
    p.add_argument("--preprocess", metavar="JSON",
                   help="image preprocessing for --images and image --calib folders, JSON text or file: "
                        '{"size": [224, 224], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], '
                        '"layout": "NCHW", "channel_order": "RGB"}; recorded in the manifest for devices')
    p.add_argument("--shape", action="append", default=[], metavar="NAME=D1,D2,...",
                   help="concrete shape for an input with dynamic dims (random golden inputs); name an input "
                        "again for another golden set, checked too (default: one more at half the dynamic "
                        "dims, so a dynamic model is proven at two shapes)")
    p.add_argument("--lod", action="append", default=[], metavar="NAME=L1,L2,...",
                   help="sequence lengths of a sequence (LoD) input, e.g. --lod words=4,5 for two sequences of 4 and "
                        "5 rows (Paddle 1.x NLP models); in an --inputs .npz give them as 'NAME.lengths'")
    p.add_argument("--seed", type=int, default=0, help="seed for random golden inputs (default 0)")
    p.add_argument("--precision", action="append", metavar="P",
                   help="fp32,fp16,int8-weight,int16-weight,int8 (default: the target's)")
    p.add_argument("--calib", type=Path, metavar="CALIB.npz",
                   help="calibration data for int8: arrays keyed by input name, first axis = samples")
    p.add_argument("--calib-method", choices=("minmax", "kl", "percentile"), default="minmax",
                   help="how int8 activation ranges come from --calib: minmax (observed range, default), kl "
                        "(KL-divergence threshold), percentile (99.999th); ONNX and Lite alike")
    p.add_argument("--eval", type=Path, dest="eval_data", metavar="EVAL.npz",
                   help="labelled data (inputs + 'labels'): report every artifact's accuracy and its drop")
    p.add_argument("--max-drop", type=float, metavar="PP",
                   help="int8 accuracy guard: max accuracy drop in points with --eval, else max %% cosine loss; "
                        "the most sensitive layers are kept in float until it holds")
    p.add_argument("--skip-pass", action="append", default=[], metavar="PASS",
                   help="disable a legalization pass (add-xshape, restore-attrs, attr-widths, add-outputs, zero-d, "
                        "unpersist-empty, layer-norm-affine, identity-adaptive-pool): to see what it repairs")
    p.add_argument("--debug-program", choices=("auto", "always", "never"), default="auto",
                   help="keep the program that fed the exporters (legalized, translated from PIR) in the bundle, so "
                        "`wherry debug BUNDLE` needs no --model: auto (default) keeps it up to 32 MB, always, never")
    p.add_argument("--without-nms", action="store_true",
                   help="detectors: export the network without its NMS tail (multiclass_nms*, matrix_nms): the "
                        "bundle returns raw boxes and class scores and its manifest says which NMS to apply")
    p.add_argument("--require-all", action="store_true",
                   help="fail (and write nothing) when any requested artifact cannot be built; by default the "
                        "artifacts that were built ship and the rest are listed as not built")
    p.add_argument("--force", action="store_true", help="replace existing bundles")
    p.add_argument("--no-verify", action="store_true", help="skip running the artifacts on this host")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when a golden output is nearly constant (parity on it means little), a requested "
                        "format or precision was not built, or an artifact could not be verified (an ARM .nb that "
                        "no emulated board ran, say)")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout (schema wherry.convert.v1)")
    p.set_defaults(func=cmd_convert)


def cmd_convert(args) -> int:
    # SIGTERM cleans up like Ctrl-C (wherry.runtimes.cli.report_errors); paddle, when a step needs it in
    # this process, is imported through paddle_mode.import_paddle, which keeps this handler.
    from wherry.convert import example, pipeline
    from wherry.runtimes.cli import interrupt_on_sigterm

    interrupt_on_sigterm()

    if args.example == bool(args.model):
        raise WherryError("give either a MODEL or --example", "try: wherry convert --example")
    model, inputs, name = args.model, args.inputs, args.name
    targets = args.target or ["desktop-x86_64"]
    if args.example:
        model, inputs, name = str(example.MODEL), inputs or example.INPUTS, name or "digits_cnn"
        targets = args.target or ["desktop-x86_64", "rpi4"]  # show a verified and an arm-only bundle
    shape_sets = _parse_shapes(args.shape)
    options = pipeline.ConvertOptions(
        model=model, targets=targets, formats=_split(args.format),
        out_dir=Path(args.out), inputs=inputs, images=args.images, preprocess=args.preprocess, shapes=shape_sets[0] if shape_sets else {}, other_shapes=shape_sets[1:], lod=_parse_lod(args.lod), precisions=_split(args.precision),
        calib=args.calib, calib_method=args.calib_method, eval_data=args.eval_data, max_drop=args.max_drop, seed=args.seed, skip_passes=args.skip_pass, require_all=args.require_all, without_nms=args.without_nms, force=args.force or args.example, verify=not args.no_verify, name=name,
        debug_program=args.debug_program)
    if args.images and not args.preprocess:
        log.warning("--images without --preprocess: images are resized to the model's input size and scaled "
                    "to [0, 1] with mean 0 and std 1; give --preprocess to match your model's training")
    results = pipeline.convert(options)
    if args.json:
        from wherry.convert.api import ConvertedBundle
        bundles = [ConvertedBundle.from_result(r) for r in results]
        emit_json("convert", {"ok": all(b.ok for b in bundles), "bundles": [b.to_json() for b in bundles]})
    else:
        for r in results:
            _print_summary(r)
    failed = [r for r in results if not r.ok]
    for r in failed:
        what = [f"{n.file} not built" for n in r.not_built if n.status == "failed to build"]
        what += [f"{a.file} failed parity" for a in (r.check.failed if r.check is not None else [])]
        if r.check is not None and not r.check.verified:
            what.append(f"nothing could be verified on this host ({', '.join(a.file for a in r.check.unverifiable)}"
                        f" cannot run here); the bundle is written: check it where it runs, e.g. `wherry check "
                        f"{r.path} --device ssh://user@board` (or --device emulated-aarch64 once `wherry targets "
                        "build-lite` has built Paddle Lite's ARM runtime), or build without verifying: --no-verify")
        log.error("%s: %s", r.path, "; ".join(what))
    if failed:
        return 1
    if args.strict:
        problems = [f"{r.path}: {p}" for r in results for p in _strict_problems(r, args)]
        for problem in problems:
            log.error("strict: %s", problem)
        return 1 if problems else 0
    return 0


def _strict_problems(result, args) -> List[str]:
    from wherry.runtimes.cli import strict_failures

    problems = strict_failures(result.check) if result.check is not None else []
    problems += [f"golden data: {w}" for w in result.report.get("warnings", []) if "constant" in w]
    built = {(a.format, a.precision) for a in result.manifest.artifacts}
    formats = {f for f, _ in built} | set(_split(args.format) or ())
    for fmt in sorted(formats):
        for precision in _split(args.precision) or ():
            if (fmt, precision) not in built:
                problems.append(f"requested {precision} {fmt} artifact was not built")
    return sorted(set(problems))


_ORIGIN = {"user": "real data (--inputs)", "random": "seeded random", "images": "real images",
           "calib": "from --calib"}


def _print_summary(result) -> None:
    from collections import Counter

    print(f"\nbundle {result.path}  (target {result.target}, {result.manifest.target.get('arch')})")
    source = result.manifest.source
    fixes = Counter(line.split(":", 1)[0] for line in source.get("legalized", []))
    made = ", ".join(f"{name} x{count}" for name, count in fixes.items()) or "none needed"
    origin_text = result.manifest.golden.get("from") or _ORIGIN.get(result.manifest.golden.get("origin"), "?")
    origin = "translated from PIR" if source.get("translated") else source.get("format")
    print(f"source {origin}; legalization: {made}; golden inputs: {origin_text}")
    if result.check is not None:
        print(result.check.table())
        for art in result.manifest.artifacts:
            for note in art.notes:
                print(f"  {art.file}: {note}")
    else:
        print("artifacts were not verified (--no-verify)")
        for missing in result.not_built:
            print(f"  {missing.file}: {missing.status.upper() if missing.status == 'failed to build' else missing.status}"
                  f" ({missing.tool}): {missing.reason}")
    if "quantization" in result.report:
        print(_quantization_table(result.report["quantization"]))
    shown = {n.file for n in result.not_built} if result.check is not None else set()  # in the table already
    for warning in result.report.get("warnings", []):
        if not any(warning.startswith(f"{file}: not built") for file in shown):
            print(f"warning: {warning}")


def _quantization_table(quant: dict) -> str:
    def fmt(value, spec, suffix=""):
        return "-" if value is None else f"{value:{spec}}{suffix}"
    metric = quant.get("metric") or "accuracy"
    rows = [("artifact", "precision", "size", "vs fp32", "latency", "vs fp32", metric, "worse by", "top-1 = fp32",
             "quantized: layers", "weights", "MACs")]
    for r in quant["rows"]:
        layers = (f"{r['quantized_layers']}/{r['weight_layers']}" if r.get("weight_layers") is not None else "-")
        rows.append((r["artifact"], r["precision"], f"{r['size'] / 1024:.1f} KB", fmt(r["size_ratio"], ".2f", "x"),
                     fmt(r["latency_ms"], ".3f", " ms") if r["runs_here"] else "ARM only",
                     fmt(r["latency_ratio"], ".2f", "x"), fmt(r.get("score", r.get("accuracy")), ".2f", "%") +
                     (" (board)" if r.get("measured_on") == "emulated aarch64 board" else ""),
                     fmt(r.get("score_drop", r.get("accuracy_drop")), "+.2f", " pt"), fmt(r.get("top1_agreement"), ".2f", "%"),
                     layers, fmt(r.get("quantized_weights"), ".0%"), fmt(r.get("quantized_macs"), ".0%")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if quant.get("reference_accuracy") is not None:
        lines.append(f"original model (Paddle Inference) {metric} on --eval data ({quant.get('eval_samples') or '?'} "
                     f"samples): {quant['reference_accuracy']:.2f}%")
    if any(r.get("measured_on") == "emulated aarch64 board" for r in quant["rows"]):
        lines.append("(board): measured from the ARM kernels' outputs on the emulated aarch64 board")
    lines += [f"note: {n}" for n in quant.get("notes", [])]
    return "\n".join(lines)


def _parse_lod(options):
    from wherry.convert.golden import parse_lod_options
    return parse_lod_options(options)


def _parse_shapes(options):
    from wherry.convert.golden import parse_shape_sets
    return parse_shape_sets(options)


def _add_inspect(sub):
    p = sub.add_parser("inspect", help="show a model's format, inputs, outputs, ops and Lite support",
                       description="Read a Paddle model without running it: format, inputs and outputs, the op "
                                   "list, and for each target profile which ops Paddle Lite has kernels for.")
    p.add_argument("model")
    p.add_argument("-t", "--target", action="append", metavar="TARGET",
                   help="targets to check Lite op support for (default: desktop-x86_64 and rpi4); for an .onnx "
                        "file or a bundle: web, which ops onnxruntime-web runs per execution provider")
    p.add_argument("--json", action="store_true", help="print JSON on stdout")
    p.set_defaults(func=cmd_inspect)


def cmd_inspect(args) -> int:
    from wherry.convert import inspect as inspect_model

    if _is_onnx_or_bundle(args.model):  # an artifact, not a Paddle model: the web target's op pre-flight
        return _inspect_web(args)
    report = inspect_model.inspect(args.model, args.target or ["desktop-x86_64", "rpi4"])
    if args.json:
        emit_json("inspect", report)
    else:
        print(inspect_model.render(report))
    return 0


def _is_onnx_or_bundle(path: str) -> bool:
    from wherry.runtimes.bundle import is_bundle

    return Path(path).suffix == ".onnx" or (Path(path).is_dir() and is_bundle(Path(path)))


def _inspect_web(args) -> int:
    from wherry.targets.web import preflight

    if any(t != "web" for t in (args.target or ["web"])):
        raise WherryError(f"{args.model} is an ONNX artifact or a bundle: only -t web inspects those",
                          "inspect the Paddle model for the other targets' Paddle Lite op support")
    report = preflight.inspect(args.model)
    if args.json:
        emit_json("web-inspect", report)
    else:
        print(preflight.render(report))
    return 0


def _add_runner_commands(sub):
    """check / run / bench / info come from the on-device runner, so host and board behave alike."""
    from wherry.runtimes import cli as runner

    specs = [("check", "check a bundle's artifacts against its golden outputs", runner.add_check_args,
              runner.cmd_check),
             ("run", "run an artifact on inputs from an .npz", runner.add_run_args, runner.cmd_run),
             ("bench", "measure an artifact's load time, latency and memory", runner.add_bench_args,
              runner.cmd_bench),
             ("info", "describe this device and its runtimes", None, runner.cmd_info)]
    for name, help_text, add_args, func in specs:
        p = sub.add_parser(name, help=help_text, description=help_text)
        (add_args or runner.add_info_args)(p)
        _add_device(p, name)
        p.set_defaults(func=_device_dispatch(name, func))


def _add_device(parser, command):
    try:
        from wherry.targets.cli import add_device_option
    except ImportError:  # device connections are optional on a minimal install
        return
    add_device_option(parser)


def _device_dispatch(command, local_func):
    def run(args) -> int:
        device = getattr(args, "device", None) or "local"
        if device == "local":
            return local_func(args)
        from wherry.targets.cli import run_device_command
        # the runner on the device gets the user's own arguments for this command
        argv = args.argv[args.argv.index(command) + 1:]
        return run_device_command(command, args, argv)
    return run


def _add_debug(sub):
    from wherry.convert.debug.cli import add_debug_command
    add_debug_command(sub)


def _add_targets(sub):
    try:
        from wherry.targets.cli import add_targets_commands
    except ImportError:
        return
    add_targets_commands(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wherry", formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Carry PaddlePaddle models to the edge: convert to Paddle Lite .nb and ONNX, "
                    "and prove parity with the original model on every target.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("-V", "--version", action="version", version=f"wherry {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_convert(sub)
    _add_inspect(sub)
    _add_runner_commands(sub)
    _add_debug(sub)
    _add_targets(sub)
    from wherry.convert.zoo.cli import add_zoo_command
    add_zoo_command(sub)
    for command in sub.choices.values():
        add_global_flags(command)
    return parser


def _version() -> str:
    from wherry import runtimes
    return runtimes.__version__


def _setup_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(message)s" if verbose == 0 else "%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if verbose == 0:
        # Library chatter is for -v; the user sees wherry's own steps.
        for noisy in ("wherry.convert", "wherry.runtimes", "wherry.targets"):
            logging.getLogger(noisy).setLevel(logging.WARNING if not quiet else logging.ERROR)
    warnings.filterwarnings("ignore", message=".*ccache.*")


def main(argv: Optional[List[str]] = None) -> int:
    from wherry.runtimes.cli import parse_or_json_error, report_errors

    # wherry chooses Paddle's program mode per child process (paddle_mode): not an inherited flag
    from .paddle_mode import FLAG
    os.environ.pop(FLAG, None)

    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_or_json_error(parser, argv)
    args.argv = argv
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _setup_logging(args.verbose, args.quiet)
    return report_errors("wherry", lambda: args.func(args), json_errors=bool(getattr(args, "json", False)),
                         command_name=args.command)


if __name__ == "__main__":
    sys.exit(main())
