"""`wherry fleet check BUNDLE... --tag board=rpi4`: the parity suite over a labgrid board farm."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from wherry.runtimes.errors import InputError

UNAVAILABLE_EXIT = 3


def add_fleet_command(sub) -> None:
    from wherry.runtimes import check_options

    p = sub.add_parser("fleet", help="check bundles on every board of a labgrid farm (needs wherry[labgrid])",
                       description="Reserve, lock and check each labgrid place with the given tags, one at a "
                                   "time, always releasing it; print one bundle x board matrix. Board tokens come "
                                   "from WHERRY_TOKEN_<PLACE> / WHERRY_TOKEN in this environment (docs/devices.md).")
    p.add_argument("action", choices=["check", "template"],
                   help="check: run the suite; template: print the labgrid environment (env) or exporter template")
    p.add_argument("items", nargs="*", metavar="BUNDLE|env|exporter", help="bundle directories (check), or which template")
    p.add_argument("--coordinator", default=os.environ.get("LG_COORDINATOR"), metavar="HOST:PORT",
                   help="the labgrid coordinator (default $LG_COORDINATOR)")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                   help="check the places with this tag (repeatable: all must match)")
    p.add_argument("--env", metavar="FILE", help="labgrid environment template (default: wherry's, with WherryDriver); "
                                                 "its imports: are Python modules the job imports, so it is code")
    p.add_argument("--skip-unavailable", action="store_true",
                   help="a board that cannot be reached is reported and skipped instead of failing the job")
    p.add_argument("--wait-timeout", type=float, default=600.0, metavar="S",
                   help="give up on a place another job holds after this long (default 600 s)")
    p.add_argument("--json", action="store_true", help="print the fleet report as JSON (schema wherry.fleet.v1)")
    p.add_argument("--junit", metavar="FILE", help="also write JUnit XML: one testsuite per place")
    # the check options every board's check gets as they are (each is honoured remotely or refused there)
    check_options.add_arguments(p, fleet=True)
    p.set_defaults(func=cmd_fleet)


def cmd_fleet(args) -> int:
    from wherry.runtimes import check_options
    from wherry.runtimes.cli import emit_json

    from .job import ENV_TEMPLATE, EXPORTER_TEMPLATE, check_env_file, run_fleet
    from . import report

    if args.action == "template":
        which = (args.items or ["env"])[0]
        if which not in ("env", "exporter"):
            raise InputError(f"no template {which!r}", "wherry fleet template env|exporter")
        sys.stdout.write((ENV_TEMPLATE if which == "env" else EXPORTER_TEMPLATE).read_text())
        return 0
    if not args.items:
        raise InputError("wherry fleet check: which bundles?", "wherry fleet check out/model.rpi4 --tag board=rpi4")
    bundles = [Path(b) for b in args.items]
    for bundle in bundles:
        if not (bundle / "manifest.json").is_file():
            raise InputError(f"{bundle} is not a bundle directory", "pass directories written by `wherry convert`")
    if not args.coordinator:
        raise InputError("no labgrid coordinator given", "pass --coordinator HOST:PORT or set LG_COORDINATOR")
    tags = {}
    for item in args.tag:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputError(f"--tag {item!r} is not KEY=VALUE", "e.g. --tag board=rpi4")
        tags[key] = value
    env_file = Path(args.env) if args.env else ENV_TEMPLATE
    check_env_file(env_file)   # before any place is reserved
    runs = run_fleet(args.coordinator, tags, bundles, check_options.forwarded_argv(args), env_file, args.wait_timeout)
    names = [b.name for b in bundles]
    failed = any(r.status in ("failed", "error") for r in runs)
    unavailable = any(r.status == "unavailable" for r in runs)
    ok = not failed and (not unavailable or args.skip_unavailable)
    if args.junit:
        Path(args.junit).write_text(report.junit_xml(runs, names))
    if args.json:
        emit_json("fleet", {**report.to_json(runs, names, ok), "skip_unavailable": args.skip_unavailable})
    else:
        print(report.table(runs, names))
    if failed:
        return 1
    return UNAVAILABLE_EXIT if unavailable and not args.skip_unavailable else 0
