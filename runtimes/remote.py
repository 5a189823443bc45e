"""Check, run and bench options as they travel to a remote runner (HTTP protocol v2), and back.

A remote command must do what the same command does locally, or refuse an option it cannot honour.
Both sides use this module: the host turns its parsed command line into a request (``*_request``),
the runner validates it and does the work (``do_*``), and the host prints the reply exactly as the
local command would (``print_*``), writing --junit / --out files on the host.

Protocol versions (``GET /info`` -> ``"protocol"``; a runner without the key speaks 1):

1. bare ``check`` (no options), ``run`` with an inputs .npz and ``?artifact=``.
2. ``check`` takes a JSON body (artifacts, tolerances, threads, timeout, strict; the reply adds
   JUnit XML and the strict failures); ``run`` takes ``backend``, ``threads`` and ``random`` in the
   query and an empty body for a bundle's golden inputs; ``POST /bundles/<id>/bench``.
"""
from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Tuple, TypedDict, Union

from .check_options import CHECK_OPTIONS, wire_fields
from .errors import InputError

if TYPE_CHECKING:
    from numpy.typing import NDArray

PROTOCOL = 2
# options each command can take over the wire; anything else on the host's command line is refused
CHECK_FIELDS = wire_fields()   # from the check options' declaration (runtimes/check_options.py)
_BENCH_FIELDS = {"artifact": str, "backend": str, "threads": int, "random": bool, "warmup": int, "runs": int}


class RemoteOptionRefused(InputError):
    """An option that a remote runner cannot honour: refused, never silently dropped."""


class CheckReply(TypedDict, total=False):
    """The reply to ``POST /bundles/<id>/check`` (``do_check``). Not total: a protocol-1 runner's reply
    has no ``junit`` nor ``strict*``."""

    ok: bool
    report: Dict[str, Any]          # checker.CheckReport.to_json()
    table: str
    junit: str
    strict: bool
    strict_failures: List[str]
    timeout: float


# ----------------------------------------------------------------------------- check

def check_request(args: argparse.Namespace) -> Dict[str, Any]:
    """The JSON body of ``POST /bundles/<id>/check`` for a parsed ``check`` command line."""
    from .cli import parse_tolerance_overrides

    for option in CHECK_OPTIONS:
        if not option.remote and getattr(args, option.dest, None):
            raise RemoteOptionRefused(f"{option.flag} is not available on a remote runner: "
                                      f"{option.not_remote_because}",
                                      f"drop {option.flag}, or run the check on the board itself")
    request = {o.name: getattr(args, o.dest, None) for o in CHECK_OPTIONS if o.remote}
    request["overrides"] = parse_tolerance_overrides(args)
    return {k: v for k, v in request.items() if v not in (None, False, [], {})}


def needs_protocol_2(request: Dict[str, Any]) -> bool:
    """Whether a check request carries anything a protocol-1 runner would silently ignore."""
    return bool(request.keys() - {"timeout"})


def parse_request(body: bytes, fields: Mapping[str, Union[type, Tuple[type, ...]]]) -> Dict[str, Any]:
    try:
        request = json.loads(body.decode("utf-8")) if body else {}
    except (UnicodeDecodeError, ValueError):
        raise InputError("the request body is not JSON", "send the options as a JSON object") from None
    if not isinstance(request, dict):
        raise InputError("the request body is not a JSON object", "send the options as a JSON object")
    for key, value in request.items():
        if key not in fields:
            raise InputError(f"unknown option {key!r}", f"this runner (protocol {PROTOCOL}) knows: "
                                                        f"{', '.join(sorted(fields))}")
        if value is not None and (isinstance(value, bool) and fields[key] is not bool
                                  or not isinstance(value, fields[key])):
            raise InputError(f"option {key!r} has the wrong type ({type(value).__name__})", "see runtimes/remote.py")
    return request


def do_check(root: str, body: bytes, job_timeout: float, max_npz_bytes: int) -> CheckReply:
    """Run a check request on the runner: the reply for the host."""
    import importlib

    from .cli import strict_failures

    request = parse_request(body, CHECK_FIELDS)
    artifacts = request.get("artifacts")
    if artifacts is not None and not all(isinstance(a, str) for a in artifacts):
        raise InputError("option 'artifacts' must list file names", "e.g. [\"model.onnx\"]")
    for name, fields in (request.get("overrides") or {}).items():
        if not isinstance(fields, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in fields.values()):
            raise InputError(f"tolerance overrides for {name!r} must map fields to numbers",
                             "e.g. {\"*\": {\"atol\": 0.001}}")
    # the runner's --job-timeout bounds every job: a host's longer (or unlimited) --timeout cannot lift it
    timeout = request.get("timeout") or job_timeout
    timeout = min(timeout, job_timeout) if timeout > 0 else job_timeout
    runtimes = importlib.import_module(__package__)
    report = runtimes.check(root, artifacts=artifacts, overrides=request.get("overrides"), isolate=True,
                            threads=request.get("threads"), timeout=timeout, max_npz_bytes=max_npz_bytes)
    problems = strict_failures(report) if request.get("strict") else []
    return {"ok": report.ok and not problems, "report": report.to_json(), "table": report.table(),
            "junit": report.junit_xml(), "strict": bool(request.get("strict")), "strict_failures": problems,
            "timeout": timeout}


def print_check(reply: Mapping[str, Any], args: argparse.Namespace) -> int:
    """Print a check reply (a ``CheckReply`` as the runner's JSON, with ok, report and table at least) as the
    local ``check`` prints its report; write --junit here. The exit code."""
    from .cli import emit_json

    if getattr(args, "junit", None):
        if "junit" not in reply:
            raise RemoteOptionRefused("this runner sent no JUnit report", "update wherry on the board")
        with open(args.junit, "w") as fh:
            fh.write(reply["junit"])
    if getattr(args, "html", None):
        _write_html(args.html, args.bundle, reply["report"])
    problems = reply.get("strict_failures", [])
    if getattr(args, "json", False):
        emit_json("check", {**reply["report"], "strict": bool(reply.get("strict")), "strict_failures": problems})
    else:
        print(reply["table"])
        for problem in problems:
            print(f"strict: {problem}")
    return 0 if reply["ok"] else 1


def _write_html(path: str, bundle_dir: str, report: Dict[str, Any]) -> None:
    """The check page, written on the host from the runner's report and the host's copy of the bundle.
    The runner sends verdicts and error figures, not the artifacts' outputs, so the page has no
    per-element error plots (a check on the board itself, or over ssh, has them)."""
    from pathlib import Path

    from .bundle import load_bundle
    from .report_html import render

    bundle = load_bundle(bundle_dir)
    Path(path).write_text(render(bundle.manifest.name, Path(bundle_dir), report, tools=bundle.manifest.tools,
                                 device=report.get("device")))


# ----------------------------------------------------------------------------- run

def run_query(args: argparse.Namespace) -> Dict[str, str]:
    """The query of ``POST /bundles/<id>/run`` for a parsed ``run`` command line (the body: --inputs, or empty)."""
    # --isolate asks for nothing more: the runner always runs artifacts in child processes
    query = {"artifact": getattr(args, "artifact", None), "backend": getattr(args, "backend", None),
             "threads": getattr(args, "threads", None), "random": "1" if getattr(args, "random", False) else None}
    return {k: str(v) for k, v in query.items() if v is not None}


def needs_protocol_2_run(query: Dict[str, str], has_inputs: bool) -> bool:
    return bool(query.keys() - {"artifact"}) or not has_inputs


def run_options(root: str, query: Dict[str, List[str]]) -> argparse.Namespace:
    """The runner side of a run query, as the namespace cli.cmd_run and cli.load_feeds read."""
    def one(name: str) -> Optional[str]:
        values = query.get(name)
        return values[0] if values else None
    threads = one("threads")
    if threads is not None and not threads.isdigit():
        raise InputError(f"threads={threads!r} is not a whole number", "e.g. threads=2")
    backend = one("backend")
    if backend is not None and backend not in ("onnxruntime", "paddlelite", "paddle"):
        raise InputError(f"unknown backend {backend!r}", "one of onnxruntime, paddlelite, paddle")
    return argparse.Namespace(path=root, artifact=one("artifact"), backend=backend,
                              threads=int(threads) if threads else None, random=one("random") == "1", inputs=None)


def print_run(outputs: Dict[str, NDArray[Any]], backend: str, seconds: float,
              args: argparse.Namespace) -> int:
    """Print remote run outputs as the local ``run`` does; write --out here."""
    import numpy as np

    from .cli import emit_json, summarize_outputs

    out = getattr(args, "out", None)
    if out:
        np.savez(out, **outputs)
    summary = summarize_outputs(outputs)
    if getattr(args, "json", False):
        emit_json("run", {"backend": backend, "seconds": seconds, "out": out, "outputs": summary})
    else:
        for s in summary:
            rng = f"  range [{s['min']:.4g}, {s['max']:.4g}]" if s["min"] is not None else ""
            print(f"{s['name']}: {s['dtype']}{s['shape']}{rng}")
        print(f"({backend} on the runner, {seconds:.3f} s" + (f", wrote {out})" if out else ")"))
    return 0


# ----------------------------------------------------------------------------- bench

def bench_request(args: argparse.Namespace) -> Dict[str, Any]:
    request = {"artifact": getattr(args, "artifact", None), "backend": getattr(args, "backend", None),
               "threads": getattr(args, "threads", None), "random": bool(getattr(args, "random", False)),
               "warmup": args.warmup, "runs": args.runs}
    return {k: v for k, v in request.items() if v not in (None, False)}


def do_bench(root: str, body: bytes, job_timeout: float) -> Dict[str, Any]:
    """Bench on the runner in a child runner process: a native crash or a hang cannot take the runner down,
    and the peak memory reported is the benchmark's own."""
    import subprocess
    import sys

    from .errors import Timeout, WherryError

    request = parse_request(body, _BENCH_FIELDS)
    argv = [sys.executable, "-m", __package__, "bench", root, "--json",
            "--warmup", str(request.get("warmup", 5)), "--runs", str(request.get("runs", 50))]
    for name in ("artifact", "backend", "threads"):
        if request.get(name) is not None:
            argv += [f"--{name}", str(request[name])]
    if request.get("random"):
        argv.append("--random")
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=job_timeout)
    except subprocess.TimeoutExpired:
        raise Timeout(f"bench took longer than the runner's job timeout ({job_timeout:g} s)",
                      "fewer --runs, or start the runner with a larger --job-timeout") from None
    try:
        document: Dict[str, Any] = json.loads(proc.stdout)   # the child's `bench --json` document
    except ValueError:
        document = {}
    if proc.returncode != 0 or "error" in document:
        error = document.get("error") or {}
        raise WherryError(error.get("message") or f"bench failed on the runner: {proc.stderr.strip()[-500:]}",
                          error.get("hint"))
    document.pop("schema", None)
    return document


def refuse_inputs_file(args: argparse.Namespace, command: str) -> None:
    if getattr(args, "inputs", None):
        raise RemoteOptionRefused(f"{command} --inputs is not available over HTTP",
                                  "bench on the bundle's golden inputs or --random, or use --device ssh://")


def print_bench(result: Dict[str, Any], args: argparse.Namespace) -> int:
    from .cli import emit_json, print_bench_result

    if getattr(args, "json", False):
        emit_json("bench", result)
    else:
        print_bench_result(result)
    return 0
