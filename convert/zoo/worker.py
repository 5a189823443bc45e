"""One zoo task in its own process: convert one model for its targets, write the verdicts as JSON.

    python -m wherry.convert.zoo.worker TASK.json RESULT.json [PARENT_PID]

The task's targets are converted in one call, so they share the golden run, the legalized
program and the ONNX export. When that call fails with an error, each target is retried alone:
one target's problem (a format it cannot build, say) does not fail the model's other targets.
A native crash kills only this process; the parent reports the cell as crashed. The worker dies
with the zoo that started it (even a kill -9 of it): it never converts on, nor publishes into -o,
for a job that is gone.
"""
from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger("wherry.convert.zoo")


def _error(exc) -> dict:
    return {"type": type(exc).__name__, "message": getattr(exc, "message", str(exc)), "hint": getattr(exc, "hint", None)}


def _cell(bundle) -> dict:
    from .report_html import write_check_page
    write_check_page(bundle)   # here, while the outputs the check compared are in memory
    data = bundle.to_json()
    data.pop("report", None)
    timings = bundle.report.get("timings", {})
    return {"status": cell_status(bundle), "bundle": data, "timings": timings}


def cell_status(bundle) -> str:
    """The bundle's verdict as a cell status: failed (an artifact failed or was not built), passed (every
    artifact ran and passed, ARM .nb files on the emulated board), partly verified (nothing failed, some
    artifacts could not run here), unverified (none ran: verify = false, or only artifacts this host
    cannot run); never passed for an artifact that did not run."""
    if any(a.verdict in ("failed", "not built") for a in bundle.artifacts):
        return "failed"
    return {"passed": "passed", "partly verified": "partly verified"}.get(bundle.verdict, "unverified")


def run(task: dict) -> dict:
    from wherry.convert.api import convert
    from wherry.runtimes.errors import WherryError

    entry, targets, out = task["model"], task["targets"], task["out"]
    options = dict(entry["options"])

    def attempt(chosen):
        return convert(entry["path"], chosen, out=out, name=entry["name"], force=True, **options)

    cells = {}
    start = time.perf_counter()
    try:
        # keyed by the target as the zoo gave it (a profile file's path, not the profile name inside it);
        # convert returns one bundle per target, in order
        for target, bundle in zip(targets, attempt(targets)):
            cells[target] = _cell(bundle)
    except WherryError as exc:
        if len(targets) == 1:
            cells[targets[0]] = {"status": "error", "error": _error(exc)}
        else:
            log.info("%s: %s; converting each target alone", entry["name"], exc.message)
            for target in targets:
                try:
                    cells[target] = _cell(attempt([target])[0])
                except WherryError as one:
                    cells[target] = {"status": "error", "error": _error(one)}
    return {"cells": cells, "seconds": round(time.perf_counter() - start, 3)}


def main(argv=None) -> int:
    args = argv or sys.argv[1:]
    task_file, result_file = args[:2]
    if len(args) > 2:
        from wherry.runtimes.lifeline import die_with_parent
        die_with_parent(int(args[2]))
    # SIGTERM cleans up like Ctrl-C; paddle, imported later by a step that needs it, keeps this handler
    from wherry.runtimes.cli import interrupt_on_sigterm
    interrupt_on_sigterm()
    logging.basicConfig(level=logging.WARNING, format=f"[{Path(task_file).stem}] %(message)s")
    result = run(json.loads(Path(task_file).read_text()))
    Path(result_file).write_text(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
