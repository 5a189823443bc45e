"""The options of a parity check, declared once.

Each :class:`CheckOption` is one option of ``check``: its flag, its ``runtimes.check()`` keyword (also
its field in a runner's HTTP check request), its type, its help, and whether it travels to a remote
runner and is forwarded by ``wherry fleet`` to every board. The tolerance flags (``--atol``, ...) are
one more family: they become the request's ``overrides``. ``cli.add_check_args``, fleet's parser, the
runner protocol's field list (``remote.CHECK_FIELDS``) and ``remote.check_request`` come from here.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from . import time_limit

DEFAULT_CHECK_TIMEOUT = time_limit.DEFAULT_S   # a bundle that records no golden run time


@dataclass(frozen=True)
class CheckOption:
    name: str                 # runtimes.check() keyword and the HTTP request's field
    flag: str
    dest: str                 # its attribute on the parsed command line
    kind: Any                 # list | int | float | bool: how argparse reads it and what the runner accepts
    help: str
    remote: bool = True       # honoured by a remote runner (else refused there, never dropped)
    fleet: bool = True        # forwarded to every board by `wherry fleet check`
    metavar: Optional[str] = None
    default: Any = None
    not_remote_because: str = ""   # why a runner refuses it (remote=False)


CHECK_OPTIONS: Tuple[CheckOption, ...] = (
    CheckOption("artifacts", "--artifact", "artifact", list, "check only this artifact (repeatable)",
                metavar="FILE"),
    CheckOption("threads", "--threads", "threads", int, "CPU threads for the backends", fleet=False, metavar="N"),
    CheckOption("strict", "--strict", "strict", bool,
                "also fail (exit 1) when a golden output is nearly constant (a pass would mean little) or any "
                "artifact could not be verified on this device (an ARM .nb on an x86 host, say) or gives wrong "
                "results when its input shape changes within one session"),
    CheckOption("isolate", "--no-isolate", "no_isolate", bool,
                "run artifacts in this process (faster; a native crash then kills the runner, and --timeout "
                "cannot apply)", remote=False, fleet=False,
                not_remote_because="it always runs artifacts in child processes, so that a native crash cannot "
                                   "take the board's runner down"),
    CheckOption("timeout", "--timeout", "timeout", float,
                f"stop an artifact that takes longer than this to load or to run (default: {time_limit.FACTOR:g} x "
                f"the golden run's time recorded in the bundle, at least {time_limit.FLOOR_S:g} s; "
                f"{DEFAULT_CHECK_TIMEOUT:g} s if it records none; 0: no limit)", metavar="S", default=None),
)

# tolerance field (runtimes.check's overrides) -> its help; the flag is the field with '-' for '_'
TOLERANCES: Dict[str, str] = {
    "atol": "absolute error allowed on top of rtol",
    "rtol": "allowed max |error| as a fraction of the golden output's scale, max |golden| (not per element as in "
            "numpy.allclose)",
    "min_cosine": "minimum cosine similarity with the golden output",
    "min_top1": "minimum fraction of rows whose argmax agrees (class scores)",
}


def tolerance_flag(field: str) -> str:
    return "--" + field.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser, fleet: bool = False) -> None:
    """The check options (all of them, or what fleet forwards) and the tolerance flags."""
    for option in CHECK_OPTIONS:
        if fleet and not option.fleet:
            continue
        kwargs: Dict[str, Any] = {"dest": option.dest, "help": option.help}
        if option.kind is bool:
            kwargs["action"] = "store_true"
        else:
            kwargs.update(metavar=option.metavar, default=None if fleet else option.default)
            if option.kind is list:
                kwargs["action"] = "append"
            else:
                kwargs["type"] = option.kind
        if fleet:
            kwargs["help"] = f"as check {option.flag}, on every board"
        parser.add_argument(option.flag, **kwargs)
    for field, text in TOLERANCES.items():
        parser.add_argument(tolerance_flag(field), dest=field, action="append", metavar="[NAME:]VALUE",
                            help=f"{text}; overrides the manifest for all outputs, or NAME:VALUE for one output "
                                 "(repeatable; an unknown NAME is an error)")


def forwarded_argv(args: argparse.Namespace) -> List[str]:
    """The check options of a parsed fleet command line, as the command line each board's check gets."""
    argv: List[str] = []
    for option in CHECK_OPTIONS:
        value = getattr(args, option.dest, None)
        if not option.fleet or value in (None, False, []):
            continue
        if option.kind is bool:
            argv.append(option.flag)
        elif option.kind is list:
            argv += [part for item in value for part in (option.flag, str(item))]
        else:
            argv += [option.flag, str(value)]
    for field in TOLERANCES:
        argv += [part for item in getattr(args, field, None) or () for part in (tolerance_flag(field), item)]
    return argv


def wire_fields() -> Dict[str, Any]:
    """A check request's fields and the JSON types a runner accepts for each."""
    kinds = {list: list, int: int, float: (int, float), bool: bool}
    return {**{o.name: kinds[o.kind] for o in CHECK_OPTIONS if o.remote}, "overrides": dict}
