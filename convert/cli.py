"""The `wherry` command line: convert, inspect, check, run, bench, targets, zoo."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

from wherry.runtimes.cli import add_global_flags, emit_json
from wherry.runtimes.errors import WherryError

if TYPE_CHECKING:
    from wherry.runtimes.quant_table import QuantSection

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


def _add_convert(sub):
    p = sub.add_parser("convert", help="convert a Paddle model into a verified bundle",
                       description="Convert a Paddle inference model (legacy .pdmodel, Paddle 3 PIR .json or a "
                                   "Paddle 1.x directory) into a bundle of Paddle Lite .nb and ONNX artifacts with "
                                   "golden outputs, and verify every artifact that can run on this machine.")
    from wherry.convert.options import add_arguments

    add_arguments(p)   # every conversion option, from its one declaration (convert/options.py)
    p.add_argument("--example", action="store_true", help="convert the bundled digits CNN (real data)")
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
    from wherry.convert.options import from_arguments
    from wherry.runtimes.cli import interrupt_on_sigterm

    interrupt_on_sigterm()

    if args.example == bool(getattr(args, "model", None)):
        raise WherryError("give either a MODEL or --example", "try: wherry convert --example")
    example_options = {}
    if args.example:   # real golden data, and a verified and an arm-only bundle
        example_options = {"model": str(example.MODEL), "inputs": getattr(args, "inputs", None) or example.INPUTS,
                           "name": getattr(args, "name", None) or "digits_cnn", "force": True,
                           "targets": getattr(args, "targets", None) or ["desktop-x86_64", "rpi4"]}
    options = from_arguments(args, **example_options)
    if options.images and not options.preprocess:
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
        problems = [f"{r.path}: {p}" for r in results for p in _strict_problems(r, options)]
        for problem in problems:
            log.error("strict: %s", problem)
        return 1 if problems else 0
    return 0


def _strict_problems(result, options) -> List[str]:
    from wherry.runtimes.cli import strict_failures

    problems = strict_failures(result.check) if result.check is not None else []
    problems += [f"golden data: {w}" for w in result.report.get("warnings", []) if "constant" in w]
    built = {(a.format, a.precision) for a in result.manifest.artifacts}
    formats = {f for f, _ in built} | set(options.formats or ())
    for fmt in sorted(formats):
        for precision in options.precisions or ():
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
    reference = result.manifest.golden.get("paddle")
    by = f"; reference: Paddle {reference}" if reference and reference != result.manifest.tools.get("paddle") else ""
    print(f"source {origin}; legalization: {made}; golden inputs: {origin_text}{by}")
    if result.check is not None:
        print(result.check.table())
        for art in result.manifest.artifacts:
            for note in art.notes:
                print(f"  {art.file}: {note}")
        for file, found in result.report.get("located", {}).items():   # --locate: wherry debug, run for the user
            print(f"  {file}: located{' on ' + found['device'] if found.get('device') else ''}: {found['summary']}")
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


def _quantization_table(quant: "QuantSection") -> str:
    from wherry.runtimes import quant_table
    from wherry.runtimes.text_table import table_lines

    lines = table_lines([quant_table.header(quant)] + quant_table.rows(quant))
    metric = quant.get("metric") or "accuracy"
    if quant.get("reference_accuracy") is not None:
        lines.append(f"original model (Paddle Inference) {metric} on --eval data ({quant.get('eval_samples') or '?'} "
                     f"samples): {quant['reference_accuracy']:.2f}%")
    if any(r.get("measured_on") == quant_table.BOARD for r in quant["rows"]):
        lines.append("(board): measured from the ARM kernels' outputs on the emulated aarch64 board")
    lines += [f"note: {n}" for n in quant.get("notes", [])]
    return "\n".join(lines)


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

    for name, help_text, add_args, func in runner.runner_commands():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_args(p)
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
    from wherry.runtimes.cli import setup_logging

    setup_logging(verbose, quiet, steps_shown=True)   # the user sees wherry's own steps; library chatter with -v
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
