"""`wherry zoo ZOO.toml`: the command line of the zoo runner (registered by wherry.convert.cli)."""
from __future__ import annotations

import logging
import math
from pathlib import Path

from wherry.runtimes.errors import WherryError

log = logging.getLogger("wherry")


def add_zoo_command(sub) -> None:
    p = sub.add_parser("zoo", help="convert and verify a model zoo (models x targets x precisions)",
                       description="Convert and verify every model of a zoo file for every target and precision: "
                                   "one bundle per model x target in -o, one matrix report. Cells run in worker "
                                   "processes (a failing or crashing cell never stops the others), in parallel "
                                   "with -j or on a Ray cluster with --ray, and unchanged cells come from a "
                                   "content-addressed cache. Format: docs/zoo.md.")
    p.add_argument("zoo", type=Path, metavar="ZOO.toml", help="the zoo file (TOML: [models.NAME] tables)")
    p.add_argument("-o", "--out", type=Path, default=Path("out/zoo"),
                   help="output directory: bundles NAME.TARGET (replaced on re-runs) (default: ./out/zoo)")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N", help="worker processes at a time (default 1)")
    p.add_argument("--max-memory", type=float, metavar="GB",
                   help="memory budget for the workers together (default: 80%% of the memory available now); "
                        "a worker starts only when the largest peak measured so far fits next to the running ones")
    p.add_argument("--cache-dir", type=Path, metavar="DIR",
                   help="cache of finished cells (default: $WHERRY_CACHE/zoo or ~/.cache/wherry/zoo)")
    p.add_argument("--no-cache", action="store_true", help="recompute every cell (and store nothing)")
    p.add_argument("--ray", metavar="ADDRESS",
                   help="run the tasks on Ray: 'local' (a private instance here), 'auto' (the cluster this machine "
                        "joined) or ray://HEAD:10001; needs pip install 'wherry[ray]'")
    p.add_argument("--timeout", type=float, metavar="S", help="kill a model's task after S seconds (crashed)")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write the matrix as a Markdown table")
    p.add_argument("--html", type=Path, metavar="FILE",
                   help="also write the matrix as a self-contained HTML page; each cell links to its bundle's "
                        "check page (check.html in the bundle)")
    p.add_argument("--json", action="store_true", help="print the matrix as JSON (schema wherry.zoo.v1)")
    p.set_defaults(func=cmd_zoo)


def cmd_zoo(args) -> int:
    from wherry.runtimes.cli import emit_json, interrupt_on_sigterm

    from . import report
    from .runner import run_zoo
    from .spec import load_zoo

    if args.jobs < 1:
        raise WherryError(f"-j {args.jobs}: the number of workers must be at least 1", "e.g. -j 2")
    # `not 0 < x < inf`, not `x <= 0`: NaN compares false with everything
    if args.max_memory is not None and not 0 < args.max_memory < math.inf:
        raise WherryError("--max-memory must be a positive number of GB", "e.g. --max-memory 8")
    if args.timeout is not None and not 0 < args.timeout < math.inf:
        raise WherryError(f"--timeout {args.timeout:g}: a cell's time limit must be a positive number of seconds",
                          "e.g. --timeout 1800, or leave it out for none")
    interrupt_on_sigterm()   # SIGTERM, like Ctrl-C, stops the workers (they run in sessions of their own)
    zoo = load_zoo(args.zoo)
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WherryError(f"cannot create output directory {args.out}: {exc.strerror or exc}",
                          "choose another directory with -o") from None

    def progress(cell) -> None:
        what = "cached" if cell.cached else cell.status
        log.info("%s x %s: %s", cell.model, cell.target, what)

    try:
        run = run_zoo(zoo, args.out, jobs=args.jobs, cache_dir=args.cache_dir, use_cache=not args.no_cache,
                      max_memory=int(args.max_memory * (1 << 30)) if args.max_memory else None,
                      ray_address=args.ray, timeout=args.timeout, on_cell=progress)
    finally:
        if args.ray:
            from .ray_backend import shutdown
            shutdown()
    if args.markdown:
        _write(args.markdown, lambda: report.markdown(run), "Markdown matrix")
    if args.html:
        from .report_html import matrix_page
        _write(args.html, lambda: matrix_page(run, args.html), "HTML matrix")
    if args.json:
        emit_json("zoo", report.to_json(run))
    else:
        print(report.table(run))
    return 0 if run.ok else 1


def _write(path: Path, text, what: str) -> None:
    """Write one report file; the matrix is printed anyway, so a file that cannot be written is an error line."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text())
    except OSError as exc:
        log.error("cannot write the %s to %s: %s", what, path, exc.strerror or exc)
