"""`wherry debug BUNDLE [--model MODEL] [--artifact F] [--json] [--html F]`."""
from __future__ import annotations

from pathlib import Path


def add_debug_command(sub) -> None:
    p = sub.add_parser("debug", help="find the first layer where an artifact leaves the original model",
                       description="Run the reference (Paddle Inference on the program that fed the exporters) "
                                   "and each artifact with every intermediate tensor exposed, match the tensors "
                                   "across formats and report the first op whose output leaves tolerance, with "
                                   "its inputs' errors (docs/debug.md).")
    p.add_argument("bundle", help="bundle directory")
    p.add_argument("--model",
                   help="the source model the bundle was converted from, to rebuild the program that fed the "
                        "exporters (its files are checked against the sha256 the manifest records); needed only "
                        "when the bundle keeps no program (convert --debug-program)")
    p.add_argument("--artifact", action="append", metavar="FILE",
                   help="artifact file to debug; repeat for several (default: every ONNX and fp32 .nb artifact)")
    p.add_argument("--device", default="local", metavar="DEVICE",
                   help="run the ONNX artifacts and ARM .nb debug builds (ARM kernels) on this device "
                        "(emulated-aarch64, ssh://user@host; as for check); the reference runs on this host")
    p.add_argument("--taps", choices=("auto", "all"), default="auto",
                   help="auto (default): tap every tensor of a small graph in one run per format, bisect a large "
                        "fp32 one (evenly spaced checkpoints first, then only the ops before the first that "
                        "diverges); all: tap and compare every tensor (docs/debug.md)")
    p.add_argument("--html", type=Path, metavar="FILE", help="also write a self-contained HTML report")
    p.add_argument("--json", action="store_true", help="print JSON on stdout (schema wherry.debug.v1)")
    p.set_defaults(func=cmd_debug)


def cmd_debug(args) -> int:
    from wherry.runtimes.cli import emit_json, interrupt_on_sigterm

    from .locate import debug

    interrupt_on_sigterm()
    report = debug(args.bundle, args.model, args.artifact, device=args.device, taps_mode=args.taps)
    if args.html:
        from wherry import runtimes
        from wherry.runtimes.report_html import write_check_html
        # the page shows the bundle's verdicts and error figures beside the divergence table
        write_check_html(args.html, args.bundle, runtimes.check(args.bundle, artifacts=args.artifact),
                         report.to_json())
    if args.json:
        emit_json("debug", report.to_json())
    else:
        print(report.text())
    return 1 if report.diverged else 0
