"""`wherry targets` and the `--device` option of check/run/bench/info."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import List, Optional

from wherry.runtimes.errors import WherryError
from wherry.targets.devices import EMULATED, connect
from wherry.targets.profile import list_profiles, load_profile


def add_targets_commands(sub) -> None:
    p = sub.add_parser("targets", help="list target profiles, or explain one",
                       description="Target profiles say what wherry builds for a device class. "
                                   "Pass a name or your own .toml file to `wherry convert -t`.")
    p.add_argument("action", nargs="?", choices=["list", "show", "build-lite"], default="list",
                   help="list the profiles, show one, or build-lite: cross-build Paddle Lite's ARM runtime "
                        "(for the emulated board and real boards; cached, ~20 min the first time)")
    p.add_argument("name", nargs="?", help="profile name or .toml file (for show)")
    p.add_argument("--json", action="store_true", help="print JSON on stdout (schema wherry.targets.v1)")
    from wherry.targets.lite import ARCHES   # what build-lite has a recipe for
    p.add_argument("--arch", default="aarch64", choices=list(ARCHES), help="build-lite: the board's CPU")
    p.add_argument("--source", metavar="DIR|ARCHIVE",
                   default=os.environ.get("WHERRY_LITE_SOURCE") or None,
                   help="build-lite: Paddle Lite's source at tag v2.13-rc (a directory or .tar.gz); "
                        "default: $WHERRY_LITE_SOURCE, else clone it from Paddle Lite's public repository")
    p.add_argument("--no-install", dest="install", action="store_false",
                   help="build-lite: never apt-get install missing build tools (by default they are installed "
                        "when running as root, else named in the error)")
    p.add_argument("--jobs", type=int, metavar="N", help="build-lite: parallel compile jobs (default: all cores)")
    p.set_defaults(func=cmd_targets)
    from wherry.targets.fleet.cli import add_fleet_command
    add_fleet_command(sub)


_PROFILE_FIELDS = ("name", "description", "arch", "os", "artifacts", "lite_places", "onnx_opset", "precisions",
                   "threads", "tolerances")


def _profile_json(profile) -> dict:
    return {**{key: getattr(profile, key) for key in _PROFILE_FIELDS}, "arch_family": profile.arch_family,
            "file": str(profile.path)}


def cmd_targets(args) -> int:
    if args.action == "build-lite":
        return cmd_build_lite(args)

    from wherry.runtimes.cli import emit_json

    if args.action == "show":
        if not args.name:
            raise WherryError("wherry targets show NAME: which profile?", "list them with: wherry targets")
        profile = load_profile(args.name)
        if getattr(args, "json", False):
            emit_json("targets", {"targets": [_profile_json(profile)]})
            return 0
        for key in _PROFILE_FIELDS:
            value = getattr(profile, key)
            print(f"{key:<12} {', '.join(map(str, value)) if isinstance(value, list) else value}")
        print(f"{'file':<12} {profile.path}")
        return 0
    if getattr(args, "json", False):
        emit_json("targets", {"targets": [_profile_json(load_profile(name)) for name in list_profiles()]})
        return 0
    for name in list_profiles():
        profile = load_profile(name)
        print(f"{name:<16} {profile.arch:<8} {'+'.join(profile.artifacts):<8} {profile.description}")
    return 0


def add_device_option(parser) -> None:
    parser.add_argument("--device", default="local", metavar="DEVICE",
                        help=f"where to run: local (default), {EMULATED} (qemu, set up on first use), "
                             "ssh://user@host[:port] (copies the bundle and runtimes, runs python3 there), "
                             "or http://host:port (a board running `python -m wherry.runtimes serve`; "
                             "token from WHERRY_TOKEN), or browser[:wasm|:webgpu] (onnxruntime-web in headless "
                             "Chromium; docs/web.md)")


def run_device_command(command: str, args, argv: Optional[List[str]] = None) -> int:
    """Run the on-device runner's ``command`` on ``args.device`` with the user's arguments; print its output.

    ``argv`` is the command's own arguments (after ``command``); without it they are taken from
    ``args.argv`` (the whole command line, as convert/cli.py records it) or ``sys.argv``.
    """
    if argv is None:
        argv = _command_args(command, getattr(args, "argv", None) or sys.argv[1:])
    argv = _without_device(list(argv))
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


def cmd_build_lite(args) -> int:
    """Build (or find, cached) Paddle Lite's ARM runtime; print where it is, its size and the build time."""
    from . import lite

    runtime = lite.build(args.arch, source=args.source, jobs=args.jobs, install=args.install)
    info = runtime.info
    how = f"built in {_duration(runtime.seconds)}" if runtime.built_now else "already built (cached)"
    print(f"Paddle Lite {info['lite_tag']} (commit {info['lite_commit'][:12]}) for {runtime.arch}: {how}")
    files = sorted((p for p in runtime.folder.iterdir() if p.is_file() and ".so" in p.name), key=lambda p: p.name)
    parts = ", ".join(f"{p.name} {_mb(p.stat().st_size)}" for p in files)
    print(f"runtime folder  {runtime.folder}  ({_mb(runtime.size())}: {parts})")
    print(f"wheel           {runtime.wheel}  ({_mb(runtime.wheel.stat().st_size)})")
    print(f"board needs     Linux {runtime.arch}, glibc >= {info['glibc']}, libstdc++ of GCC >= 12, numpy; "
          "any CPython >= 3.7")
    print(f"on a board      pip install {runtime.wheel.name}   (or copy the folder and set "
          f"WHERRY_LITE_RUNTIME=/path/to/{runtime.folder.name})")
    return 0


def _mb(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"
