"""`wherry targets` and the `--device` option of check/run/bench/info."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

from wherry.targets.devices import EMULATED, connect
from wherry.targets.profile import list_profiles, load_profile


def add_targets_commands(sub) -> None:
    p = sub.add_parser("targets", help="list target profiles, or explain one",
                       description="Target profiles say what wherry builds for a device class. "
                                   "Pass a name or your own .toml file to `wherry convert -t`.")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    p.add_argument("name", nargs="?", help="profile name or .toml file (for show)")
    p.set_defaults(func=cmd_targets)


def cmd_targets(args) -> int:
    if args.action == "show":
        if not args.name:
            print("wherry targets show NAME: which profile?", file=sys.stderr)
            return 2
        profile = load_profile(args.name)
        for key in ("name", "description", "arch", "os", "artifacts", "lite_places", "onnx_opset", "precisions",
                    "threads", "tolerances"):
            value = getattr(profile, key)
            print(f"{key:<12} {', '.join(map(str, value)) if isinstance(value, list) else value}")
        print(f"{'file':<12} {profile.path}")
        return 0
    for name in list_profiles():
        profile = load_profile(name)
        print(f"{name:<16} {profile.arch:<8} {'+'.join(profile.artifacts):<8} {profile.description}")
    return 0


def add_device_option(parser) -> None:
    parser.add_argument("--device", default="local", metavar="DEVICE",
                        help=f"where to run: local (default), {EMULATED} (qemu, set up on first use), "
                             "or ssh://user@host[:port] (copies the bundle and runtimes, runs python3 there)")


def run_device_command(command: str, args, argv: Optional[List[str]] = None) -> int:
    """Run the on-device runner's ``command`` on ``args.device`` with the user's arguments; print its output.

    ``argv`` is the command's own arguments (after ``command``); without it they are taken from
    ``args.argv`` (the whole command line, as convert/cli.py records it) or ``sys.argv``.
    """
    if argv is None:
        argv = _command_args(command, getattr(args, "argv", None) or sys.argv[1:])
    argv = _without_device(list(argv))
    if command == "check" and args.device == EMULATED and "--no-isolate" not in argv:
        argv.append("--no-isolate")  # qemu-user cannot start a second emulated process for isolation
    target = getattr(args, "bundle", None) or getattr(args, "artifact_path", None) or getattr(args, "path", None)
    paths = [target] if target and Path(target).exists() else []
    result = connect(args.device).run([command, *argv], paths)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.exit_code


def _command_args(command: str, full: List[str]) -> List[str]:
    """The arguments after the subcommand in a full command line."""
    full = [str(a) for a in full]
    return full[full.index(command) + 1:] if command in full else full


def _without_device(argv):
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--device":
            skip = True
        elif not arg.startswith("--device="):
            out.append(arg)
    return out
