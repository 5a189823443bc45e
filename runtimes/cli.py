"""The on-device runner: ``python -m wherry.runtimes {info,run,check,bench,serve}``.

The host CLI reuses these parsers and commands as ``wherry run/check/bench/info``:
``add_*_args(parser)`` adds a command's options and ``cmd_*(args)`` runs it and
returns the exit code (0 ok, 1 check failed, 2 user error via WherryError).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import logging
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Mapping, NoReturn, Optional, Tuple, TypedDict, Union

from . import check_options, device, time_limit
from .errors import InputError, WherryError

if TYPE_CHECKING:
    from types import FrameType

    from numpy.typing import NDArray

    from .checker import CheckReport
    from .session import Session

    # what signal.signal takes and returns: a function, SIG_DFL / SIG_IGN, or None (not set from Python)
    SignalHandler = Union[Callable[[int, Optional[FrameType]], object], int, signal.Handlers, None]

log = logging.getLogger(__name__)


# --json output: every document names its schema (docs/json.md, docs/schemas/); bump the number on
# an incompatible change.
JSON_SCHEMA_VERSION = 1


def schema_id(command: str) -> str:
    return f"wherry.{command}.v{JSON_SCHEMA_VERSION}"


def emit_json(command: str, payload: Mapping[str, Any]) -> None:
    """Print one --json document: {"schema": "wherry.COMMAND.v1", ...payload}."""
    print(json.dumps({"schema": schema_id(command), **payload}, indent=2, default=str))


def add_global_flags(p: argparse.ArgumentParser) -> None:
    """-v/-q accepted after a subcommand too (``wherry convert ... -q``); SUPPRESS keeps a value given
    before the subcommand when the flag is not repeated after it."""
    p.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help="more log output (-vv: debug)")
    p.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only warnings and errors")


# ----------------------------------------------------------------------------- shared helpers

def _add_open_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", metavar="ARTIFACT",
                   help="a bundle directory, an .onnx or .nb file, or a Paddle model (.pdmodel/.json/1.x dir)")
    p.add_argument("--artifact", metavar="FILE", help="which artifact of a bundle (file name, e.g. model.onnx)")
    from .backends import NAMES as BACKENDS   # the backend registry, not a second list of its names
    p.add_argument("--backend", choices=BACKENDS, help="force a backend")
    p.add_argument("--threads", type=int, metavar="N", help="CPU threads for the backend")
    p.add_argument("--inputs", metavar="IN.npz", help="input arrays by input name (default: a bundle's golden inputs)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def load_feeds(args: argparse.Namespace, session: Session) -> Dict[str, NDArray[Any]]:
    """The feeds a run uses: --inputs, else the bundle's golden inputs, else --random data (the
    runner's HTTP server reads its run queries through this too)."""
    from pathlib import Path

    from .bundle import is_bundle, load_bundle
    from .npz import load_npz

    if getattr(args, "inputs", None):
        return load_npz(args.inputs)
    root = Path(args.path) if Path(args.path).is_dir() else Path(args.path).parent
    if is_bundle(root):
        from .checker import golden_data

        return golden_data(load_bundle(root))[0]
    if getattr(args, "random", False):
        import numpy as np

        rng = np.random.default_rng(0)
        feeds: Dict[str, NDArray[Any]] = {}
        for spec in session.inputs:
            if not spec.shape or any(d is None for d in spec.shape[1:]):
                raise InputError(f"input {spec.describe()} has unknown dimensions; cannot make random data",
                                 "pass --inputs in.npz")
            shape = tuple(1 if d is None else d for d in spec.shape)
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
        return feeds
    raise InputError(f"{args.path} is not inside a bundle, so there are no golden inputs to use",
                     "pass --inputs in.npz (numpy.savez(path, input_name=array))" +
                     (" or --random" if hasattr(args, "random") else ""))


def _open(args: argparse.Namespace, isolate: bool = False) -> Session:
    from . import open as open_artifact   # the package's open(), not the builtin

    return open_artifact(args.path, artifact=getattr(args, "artifact", None), threads=getattr(args, "threads", None),
                         isolate=isolate, backend=getattr(args, "backend", None))


def parse_tolerance_overrides(args: argparse.Namespace) -> Dict[str, Dict[str, float]]:
    """``--atol 1e-3`` (all outputs) and ``--atol NAME:1e-3`` (one output) -> {"*"|name: {field: value}}."""
    overrides: Dict[str, Dict[str, float]] = {}
    for attr in check_options.TOLERANCES:
        flag = check_options.tolerance_flag(attr)[2:]
        for item in getattr(args, attr, None) or ():
            name, _, value = item.rpartition(":")
            try:
                number = float(value)
            except ValueError:
                raise InputError(f"--{flag} {item!r} is not a number or NAME:NUMBER",
                                 f"examples: --{flag} 1e-3, --{flag} logits:1e-3") from None
            overrides.setdefault(name or "*", {})[attr] = number
    return overrides


# ----------------------------------------------------------------------------- info

def device_info() -> Dict[str, Any]:
    """This device: arch, CPU, OS, Python, numpy and the backends it can run (for `info` and the HTTP runner)."""
    from . import __version__, available

    info = device.describe()
    try:
        import numpy

        info["numpy"] = numpy.__version__
    except ImportError:
        info["numpy"] = None
    info["wherry_runtimes"] = __version__
    info["backends"] = available()
    from .backends import paddlelite_light

    built = paddlelite_light.runtime_info()
    if built:  # the ARM Lite runtime wherry builds: say which Lite source it is, for version questions
        info["paddlelite_runtime"] = (f"Paddle Lite {built.get('lite_tag')} (commit {str(built.get('lite_commit'))[:12]}, "
                                      f"built for {built.get('arch')}) at {built['folder']}")
    return info


def cmd_info(args: argparse.Namespace) -> int:
    info = device_info()
    if getattr(args, "json", False):
        emit_json("info", info)
        return 0
    width = max(len(k) for k in info)
    for key, value in info.items():
        if key == "backends":
            value = ", ".join(f"{k} {v}" if v else f"{k} (not installed)" for k, v in value.items())
        print(f"{key.ljust(width)}  {value}")
    return 0


def add_info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="machine-readable output")


# ----------------------------------------------------------------------------- run

def add_run_args(p: argparse.ArgumentParser) -> None:
    _add_open_args(p)
    p.add_argument("--out", metavar="OUT.npz", help="write the outputs here")
    p.add_argument("--random", action="store_true", help="feed seeded random data (fixed-shape inputs only)")
    p.add_argument("--isolate", action="store_true", help="run in a child process (a native crash becomes an error)")


def cmd_run(args: argparse.Namespace) -> int:
    import numpy as np

    start = time.perf_counter()
    with _open(args, isolate=getattr(args, "isolate", False)) as session:
        feeds = load_feeds(args, session)
        outputs = session.run(feeds)
        backend = session.backend
    seconds = time.perf_counter() - start
    if getattr(args, "out", None):
        np.savez(args.out, **outputs)
    summary = summarize_outputs(outputs)
    if getattr(args, "json", False):
        emit_json("run", {"backend": backend, "seconds": seconds, "out": getattr(args, "out", None),
                          "outputs": summary})
    else:
        for s in summary:
            rng = f"  range [{s['min']:.4g}, {s['max']:.4g}]" if s["min"] is not None else ""
            print(f"{s['name']}: {s['dtype']}{s['shape']}{rng}")
        print(f"({backend}, {seconds:.3f} s" + (f", wrote {args.out})" if getattr(args, "out", None) else ")"))
    return 0


class OutputSummary(TypedDict):
    """One output in run's report (``summarize_outputs``); min and max are None for non-numeric or empty ones."""

    name: str
    dtype: str
    shape: List[int]
    min: Optional[float]
    max: Optional[float]


def summarize_outputs(outputs: Mapping[str, NDArray[Any]]) -> List[OutputSummary]:
    """Name, dtype, shape and range of each output (run's report, local or remote)."""
    return [{"name": k, "dtype": str(v.dtype), "shape": list(v.shape),
             "min": float(v.min()) if v.size and v.dtype.kind in "biuf" else None,
             "max": float(v.max()) if v.size and v.dtype.kind in "biuf" else None} for k, v in outputs.items()]


# ----------------------------------------------------------------------------- check

def add_check_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("bundle", metavar="BUNDLE", help="a bundle directory written by `wherry convert`")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--junit", metavar="FILE", help="also write a JUnit XML report (one test per artifact and output)")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report (tables, error figures)")
    check_options.add_arguments(p)   # the check options and tolerance flags, declared once


def cmd_check(args: argparse.Namespace) -> int:
    from . import check

    overrides = parse_tolerance_overrides(args)
    timeout = getattr(args, "timeout", None)
    report = check(args.bundle, artifacts=getattr(args, "artifact", None), overrides=overrides,
                            isolate=not getattr(args, "no_isolate", False), threads=getattr(args, "threads", None),
                            timeout=time_limit.AUTO if timeout is None else timeout)   # time_limit.choose reads it
    return print_check_report(args, report)


def print_check_report(args: argparse.Namespace, report: CheckReport) -> int:
    """Write the --junit file, print the table or --json document; the exit code (0 ok, 1 failed).
    Shared by every device, so a report reads the same wherever the artifacts ran."""
    if getattr(args, "junit", None):
        with open(args.junit, "w") as fh:
            fh.write(report.junit_xml())
    if getattr(args, "html", None):
        from .report_html import write_check_html
        write_check_html(args.html, args.bundle, report)
    strict_problems = strict_failures(report) if getattr(args, "strict", False) else []
    if getattr(args, "json", False):
        emit_json("check", {**report.to_json(), "strict": bool(getattr(args, "strict", False)),
                            "strict_failures": strict_problems})
    else:
        print(report.table())
        for problem in strict_problems:
            print(f"strict: {problem}")
    return 0 if report.ok and not strict_problems else 1


def strict_failures(report: CheckReport) -> List[str]:
    """Why ``--strict`` fails a report that may otherwise pass."""
    problems = sorted({f"golden output {o.name!r} is nearly constant: parity on it is meaningless"
                       for r in report.results for o in r.outputs if o.uninformative})
    if not report.verified:
        problems.append("no artifact could be verified on this device")
    elif report.unverifiable:
        problems.append(f"{len(report.unverifiable)} artifact(s) not verified on this device: "
                        + ", ".join(r.file for r in report.unverifiable))
    problems += [f"{r.file} mishandles a change of input shape within one session" for r in report.results
                 if any(s.get("shape_change") for s in r.shapes)]
    return problems


# ----------------------------------------------------------------------------- bench

def add_bench_args(p: argparse.ArgumentParser) -> None:
    _add_open_args(p)
    p.add_argument("--random", action="store_true", help="feed seeded random data (fixed-shape inputs only)")
    p.add_argument("--warmup", type=int, default=5, metavar="N", help="untimed runs first (default 5)")
    p.add_argument("--runs", type=int, default=50, metavar="N", help="timed runs (default 50)")


def _peak_rss_mb() -> Optional[float]:
    try:
        import resource
    except ImportError:  # not on Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def cmd_bench(args: argparse.Namespace) -> int:
    result = bench(args)
    if getattr(args, "json", False):
        emit_json("bench", result)
    else:
        print_bench_result(result)
    return 0


class _BenchTimes(TypedDict):
    artifact: str
    backend: str
    threads: Optional[int]
    load_s: float
    runs: int
    warmup: int
    p50_ms: float
    p90_ms: float
    min_ms: float
    mean_ms: float
    peak_rss_mb: float


class BenchResult(_BenchTimes, total=False):
    """The bench result (``bench --json``); ``emulated`` only on an emulated device."""

    emulated: str


def bench(args: argparse.Namespace) -> BenchResult:
    """Load, warm up and time an artifact (local, or on a remote runner): the bench result."""
    if args.runs < 1 or args.warmup < 0:
        raise InputError("--runs must be >= 1 and --warmup >= 0", "example: --warmup 5 --runs 50")
    start = time.perf_counter()
    session = _open(args)
    load_s = time.perf_counter() - start
    try:
        feeds = load_feeds(args, session)
        for _ in range(args.warmup):
            session.run(feeds)
        times: List[float] = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            session.run(feeds)
            times.append((time.perf_counter() - t0) * 1000.0)
        backend = session.backend
    finally:
        session.close()
    times.sort()

    def pct(q: float) -> float:
        return times[min(len(times) - 1, int(round(q * (len(times) - 1))))]
    result: BenchResult = {"artifact": args.path if not getattr(args, "artifact", None) else f"{args.path}/{args.artifact}",
              "backend": backend, "threads": getattr(args, "threads", None), "load_s": round(load_s, 4),
              "runs": args.runs, "warmup": args.warmup, "p50_ms": round(pct(0.5), 3), "p90_ms": round(pct(0.9), 3),
              "min_ms": round(times[0], 3), "mean_ms": round(sum(times) / len(times), 3),
              "peak_rss_mb": round(_peak_rss_mb() or 0.0, 1)}
    emulated = device.emulation()
    if emulated:
        result["emulated"] = emulated
    return result


def print_bench_result(result: Mapping[str, Any]) -> None:
    print(f"{result['artifact']} ({result['backend']}): load {result['load_s'] * 1000:.1f} ms; "
          f"p50 {result['p50_ms']:.3f} ms, p90 {result['p90_ms']:.3f} ms, min {result['min_ms']:.3f} ms "
          f"over {result['runs']} runs; peak RSS {result['peak_rss_mb']:.1f} MB")
    if result.get("emulated"):
        print(f"note: measured on an emulated device ({result['emulated']}): these are the emulator's times, "
              "typically hundreds of times slower than a real board's; they say nothing about a board's speed")


# ----------------------------------------------------------------------------- serve and main

def cmd_serve(argv: List[str]) -> int:
    try:
        serve = importlib.import_module(f"{__package__}.serve")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__package__}.serve":
            raise
        raise WherryError("the HTTP runner (wherry.runtimes.serve) is not part of this installation",
                          "update wherry on this device, or use `python -m wherry.runtimes run/check`") from None
    return int(serve.main(argv) or 0)


def runner_commands() -> List[Tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[..., int]]]:
    """The commands of the on-device runner, which the host CLI offers as they are (with --device):
    (name, help, add its options, run it)."""
    return [("check", "check a bundle's artifacts against its golden outputs (exit 1 on failure)", add_check_args,
             cmd_check),
            ("run", "run an artifact on inputs from an .npz", add_run_args, cmd_run),
            ("bench", "measure an artifact's load time, latency and memory", add_bench_args, cmd_bench),
            ("info", "describe this device and its runtimes", add_info_args, cmd_info)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m wherry.runtimes",
                                     description="wherry on-device runner: run and check wherry artifacts.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    parser.add_argument("-V", "--version", action="version", version=f"wherry-runtime {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text, add, func in runner_commands():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
        add_global_flags(p)
        p.set_defaults(func=func)
    sub.add_parser("serve", help="serve artifacts over HTTP (see `python -m wherry.runtimes serve --help`)", add_help=False)
    return parser


def _version() -> str:
    from .version import __version__
    return __version__


class _ErrorBody(TypedDict):
    type: str
    message: str
    hint: Optional[str]


class ErrorDocument(TypedDict):
    """The ``wherry.error.v1`` document (its ``schema`` key added by ``emit_json``)."""

    command: Optional[str]
    exit_code: int
    error: _ErrorBody


def error_document(command: Optional[str], error_type: str, message: str, hint: Optional[str],
                   exit_code: int) -> ErrorDocument:
    return {"command": command, "exit_code": exit_code,
            "error": {"type": error_type, "message": message, "hint": hint}}


def report_errors(prog: str, command: Callable[[], int], json_errors: bool = False,
                  command_name: Optional[str] = None) -> int:
    """Run a CLI command; user errors become one message and a hint, never a traceback.

    With ``json_errors`` (the command's --json) the error is also a ``wherry.error.v1`` document
    on stdout, where a program reading --json output looks; the exit code is the same.
    Shared by `python -m wherry.runtimes` and the host's `wherry`. SIGTERM stops a command like Ctrl-C
    does, so the same cleanup runs (temporary directories, half-written bundles, child processes).
    """
    previous = interrupt_on_sigterm()
    try:
        return int(command() or 0)
    except WherryError as exc:
        print(f"{prog}: error: {exc.message}", file=sys.stderr)
        if exc.hint:
            print(f"  hint: {exc.hint}", file=sys.stderr)
        if json_errors:
            emit_json("error", error_document(command_name, type(exc).__name__, exc.message, exc.hint, exc.exit_code))
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `... | head`: the reader left, nothing to report
        sys.stdout = open(os.devnull, "w")
        return 0
    except OSError as exc:   # the machine refused (a full disk, a name too long, no permission): one line too
        log.debug("system error", exc_info=True)
        error = os_error(exc)
        print(f"{prog}: error: {error.message}", file=sys.stderr)
        print(f"  hint: {error.hint}", file=sys.stderr)
        if json_errors:
            emit_json("error", error_document(command_name, "OSError", error.message, error.hint, error.exit_code))
        return error.exit_code
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def os_error(exc: OSError) -> WherryError:
    """An operating system's refusal as wherry's one-line error, with the cause named and what to do."""
    import errno

    where = exc.filename2 if exc.filename2 is not None else exc.filename
    where = f" ({str(where)[:200]})" if where is not None else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return WherryError(f"no space left on the disk{where}",
                           "free space there, or write elsewhere (-o DIR for bundles, TMPDIR for temporary files); "
                           "a bundle is published whole or not at all, so the previous one is unchanged")
    if exc.errno == errno.ENAMETOOLONG:
        return WherryError(f"a file name is longer than the file system allows{where}",
                           "use a shorter --name, target or output folder")
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return WherryError(f"not allowed: {exc.strerror}{where}", "write to a folder you own (-o DIR)")
    return WherryError(f"{exc.strerror or exc}{where}", "run again with -v for the details; report it if it persists")


def _raise_interrupt(signum: int, frame: Optional[FrameType]) -> NoReturn:
    raise KeyboardInterrupt()


def interrupt_on_sigterm() -> SignalHandler:
    """Make SIGTERM raise KeyboardInterrupt (main thread only); returns the handler it replaced."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_interrupt)


def parse_or_json_error(parser: argparse.ArgumentParser, argv: List[str]) -> argparse.Namespace:
    """parse_args; with --json on the command line a usage error is also a wherry.error.v1 document."""
    if "--json" not in argv:
        return parser.parse_args(argv)
    captured = io.StringIO()  # argparse writes usage + "error: ..." to stderr: keep it for the document too
    try:
        with contextlib.redirect_stderr(captured):
            return parser.parse_args(argv)
    except SystemExit as exc:
        text = captured.getvalue()
        sys.stderr.write(text)
        if exc.code not in (0, None):
            command = next((a for a in argv if not a.startswith("-")), None)
            reason = next((line.split("error:", 1)[1].strip() for line in text.splitlines() if "error:" in line),
                          "invalid command line")
            emit_json("error", error_document(command, "UsageError", reason,
                                              f"{parser.prog} {command or ''} --help".replace("  ", " "), 2))
        raise


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = 0
    while argv and argv[0] in ("-v", "-vv", "--verbose"):
        verbose += 2 if argv.pop(0) == "-vv" else 1
    if argv and argv[0] == "serve":
        _setup_logging(verbose, False)
        return report_errors("runtimes", lambda: cmd_serve(argv[1:]))
    parser = build_parser()
    args = parse_or_json_error(parser, argv)
    _setup_logging(verbose + (getattr(args, "verbose", 0) or 0), bool(getattr(args, "quiet", False)))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return report_errors("runtimes", lambda: args.func(args), json_errors=bool(getattr(args, "json", False)),
                         command_name=args.command)


def _setup_logging(verbose: int, quiet: bool) -> None:
    setup_logging(verbose, quiet, steps_shown=False)


def setup_logging(verbose: int, quiet: bool, steps_shown: bool) -> None:
    """The one logging set-up of both CLIs. The host shows its own steps by default (``steps_shown``: INFO
    as plain lines, library chatter only with -v); the runner only warnings, -v INFO, -vv DEBUG."""
    if steps_shown:
        level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    else:
        level = logging.ERROR if quiet else (logging.WARNING if not verbose else
                                             (logging.INFO if verbose == 1 else logging.DEBUG))
    plain = steps_shown and verbose == 0
    logging.basicConfig(level=level, format="%(message)s" if plain else "%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if plain:
        for noisy in ("wherry.convert", "wherry.runtimes", "wherry.targets"):
            logging.getLogger(noisy).setLevel(logging.WARNING if not quiet else logging.ERROR)
