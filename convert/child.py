"""Run a fragile native tool (Paddle Lite opt, paddle2onnx, Paddle PTQ) in a child process.

Those libraries segfault or abort on some models and paddle2onnx calls
``sys.exit`` on Python-side errors; none of that may take the CLI down. The
child runs ``python -m wherry.convert.child MODULE:FUNC`` with JSON keyword
arguments on stdin, writes the function's JSON result to a file, and sends
its own stdout/stderr (the tools' logs) to a log file. A signal becomes
``NativeCrash`` naming the tool, the signal and the last log lines.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable, Optional, Sequence

from wherry.runtimes.errors import NativeCrash, WherryError
from wherry.runtimes.paddle_errors import is_paddle_error, summarize

log = logging.getLogger(__name__)

# Lines that every paddle import prints and that only hide the real error.
_NOISE = ("ccache", "warnings.warn(", "UserWarning", "New Executor is Running", "   - Skip ", "KernelGrade]",
          "pick kernel for")
_FAILED = 3  # exit code of a child whose function raised


class ToolError(WherryError):
    """A conversion tool refused the model (it exited with an error, not a crash)."""


# glog/Lite line prefix: "[1 11/24 19:28: 2.9 ...optimizer.cc:99 ApplyPasses] " or "I1124 19:28:02.1 123 file.cc:9] "
_LOG_PREFIX = re.compile(r"^(\[\d+ \d+/\d+ [\d:. ]+\S+ \w+\]|[IWEF]\d{4} [\d:.]+\s+\d+ \S+\])\s*")


# Paddle's C++ crash report boilerplate: says nothing about the cause.
_BOILERPLATE = re.compile(r"^(-{5,}|C\+\+ Traceback|Error Message Summary|FatalError: `Process abort|"
                          r"\s*\[(TimeInfo|SignalInfo):|\d+\s+\S+::)")


def log_tail(text: str, lines: int = 6) -> str:
    """The informative end of a tool's log: its error lines first, then the last lines."""
    kept = [_LOG_PREFIX.sub("", ln) for ln in text.splitlines()
            if ln.strip() and not any(n in ln for n in _NOISE) and not _BOILERPLATE.match(ln)]
    errors = [ln for ln in kept if "[ERROR]" in ln or "Error:" in ln or "error:" in ln][-3:]
    tail = errors + [ln for ln in kept[-lines:] if ln not in errors]
    return "\n".join(tail[-max(lines, len(errors)):])


def run(target: str, kwargs: dict, *, tool: str, what: str, timeout: float = 1800,
        env: Optional[dict] = None, explain_crash: Optional[Callable[[str], Optional[str]]] = None,
        python: Optional[str] = None, pythonpath: Sequence[str] = ()):
    """Call ``target`` ("package.module:function") with ``kwargs`` in a child process.

    Returns the function's JSON-serialisable result and the child's log text.
    ``explain_crash(log_text)`` may return a hint (e.g. the pass that crashed). ``python``: another
    interpreter (a tool's own venv, ``tool_env``), with ``pythonpath`` first on its path.
    """
    with tempfile.TemporaryDirectory(prefix="wherry-child-") as tmp:
        result_path = Path(tmp) / "result.json"
        log_path = Path(tmp) / "log.txt"
        child_env = dict(os.environ)
        child_env.update(env or {})
        child_env["WHERRY_CHILD_RESULT"] = str(result_path)
        child_env["WHERRY_CHILD_PARENT"] = str(os.getpid())   # the tool dies with this process
        # The project root must be importable in the child even when wherry is not installed.
        root = str(Path(__file__).resolve().parent.parent)
        child_env["PYTHONPATH"] = os.pathsep.join([*pythonpath, root, child_env.get("PYTHONPATH", "")])
        start = time.perf_counter()
        with open(log_path, "w") as log_file:
            try:
                proc = subprocess.run([python or sys.executable, "-m", "wherry.convert.child", target],
                                      input=json.dumps(kwargs), text=True, env=child_env,
                                      stdout=log_file, stderr=subprocess.STDOUT, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise ToolError(f"{tool} did not finish {what} within {timeout:.0f} s",
                                "the model may be too large for this machine; try again with fewer targets") from None
        elapsed = time.perf_counter() - start
        text = log_path.read_text(errors="replace")
        log.debug("%s (%s) finished in %.2f s with code %s", tool, what, elapsed, proc.returncode)
        if proc.returncode < 0 or proc.returncode in (134, 139):
            signum = -proc.returncode if proc.returncode < 0 else proc.returncode - 128
            try:
                signame = signal.Signals(signum).name
            except ValueError:
                signame = f"signal {signum}"
            hint = explain_crash(text) if explain_crash else None
            raise NativeCrash(tool, signame, log_tail(text), what=what,
                              hint=hint or "report the model to wherry with this log; try another target or format")
        result = json.loads(result_path.read_text()) if result_path.is_file() else None
        if proc.returncode != 0 or result is None:
            message = (result or {}).get("error") or f"{tool} exited with code {proc.returncode}"
            log.debug("%s log:\n%s", tool, text)
            # A summarized Paddle error says it all; otherwise the log's end is the best clue.
            tail = "" if (result or {}).get("summarized") else "\n" + log_tail(text, 8)
            raise ToolError(f"{tool} failed while {what}: {message}{tail}".rstrip(),
                            (result or {}).get("hint") or "check that the model exports and runs with Paddle itself")
        return result.get("value"), text, elapsed


def _without_traceback(text: str) -> str:
    """A tool's exception text that embeds a traceback of its own (rknn-toolkit2 re-raises with one): its last
    line, the error itself; the whole text is in the child's log."""
    if "Traceback (most recent call last)" not in text:
        return text
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else text


def _main(argv) -> int:
    target = argv[1]
    result_path = Path(os.environ["WHERRY_CHILD_RESULT"])
    if os.environ.get("WHERRY_CHILD_PARENT", "").isdigit():
        from wherry.runtimes.lifeline import die_with_parent
        die_with_parent(int(os.environ["WHERRY_CHILD_PARENT"]))
    module_name, func_name = target.split(":")
    kwargs = json.loads(sys.stdin.read() or "{}")
    try:
        value = getattr(importlib.import_module(module_name), func_name)(**kwargs)
    except WherryError as exc:
        result_path.write_text(json.dumps({"error": exc.message, "hint": exc.hint}))
        return _FAILED
    except SystemExit as exc:  # paddle2onnx reports its errors with sys.exit
        result_path.write_text(json.dumps({"error": f"the tool gave up (exit {exc.code})"}))
        return _FAILED
    except Exception as exc:  # noqa: BLE001 - any library error is reported, not raised across processes
        traceback.print_exc()  # into the log file (kept for -v), not shown to the user
        if is_paddle_error(str(exc)):
            message, hint = summarize(str(exc))
            result_path.write_text(json.dumps({"error": f"Paddle: {message}", "hint": hint, "summarized": True}))
        else:
            result_path.write_text(json.dumps({"error": f"{type(exc).__name__}: {_without_traceback(str(exc))}"}))
        return _FAILED
    result_path.write_text(json.dumps({"value": value}))
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    code = _main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # os._exit: skip interpreter teardown, where paddle's static destructors sometimes crash.
    os._exit(code)
