"""Which op a Paddle Lite debug build dies in: a bisection over the program's prefixes.

A crash takes every tapped tensor with it, and a check in Lite's program runner (``program.cc ... Check
failed: op_->CheckShape()``) names no op. So the program is cut after op k (the ops after it dropped, k's
outputs fetched) and built again: a prefix that runs holds no crashing op, one that crashes does, and about
log2(ops) builds find the first op whose prefix crashes. One more run of the prefix before it reads that
op's inputs, compared with the reference, so "inputs fine, the op dies" is visible as for a divergence.

What it trades away: an op Lite's optimizer removes or fuses in the full program may still run in a prefix
(its consumer gone), so a prefix can crash where the full program would not have got to; the op found is
then still one Lite cannot run on these inputs.
"""
from __future__ import annotations

import logging
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from wherry.runtimes.errors import NativeCrash

from . import program as program_io

log = logging.getLogger(__name__)

# (the prefix's last op, as an OpRecord.index; the names to fetch) -> tensors; raises NativeCrash when Lite dies
RunPrefix = Callable[[int, List[str]], Dict[str, np.ndarray]]


def _fetchable(program: program_io.Program, ops: List[program_io.OpRecord]) -> List[str]:
    """The data outputs of the last op of ``ops`` that has any (what a prefix ending there fetches)."""
    for op in reversed(ops):
        names = op.data_outputs(program.tensors)
        if names:
            return names
    return []


def crash_point(program: program_io.Program, run: RunPrefix) -> Tuple[Optional[int], int]:
    """The position (in ``program.top_ops()``) of the first op whose prefix crashes, or None when no prefix does
    (the crash needs the fetches of the full debug build, or does not repeat); and the prefix builds it took."""
    ops = program.top_ops()    # a prefix cuts block 0: a crash inside a sub-block is found at its control-flow op
    good, bad, builds = -1, len(ops) - 1, 0    # the empty prefix runs; the whole program crashed
    while bad - good > 1:
        middle = (good + bad) // 2
        names = _fetchable(program, ops[:middle + 1])
        builds += 1
        if not names:       # nothing computed yet: nothing there can crash a run
            good = middle
            continue
        try:
            run(ops[middle].index, names)
            good = middle
        except NativeCrash:
            bad = middle
        log.info("crash bisection: ops %d..%d", good + 1, bad)
    if bad == len(ops) - 1:   # confirm the last op: the program itself, not the fetched taps, crashes
        names = _fetchable(program, ops)
        builds += 1
        try:
            run(ops[bad].index, names)
            return None, builds
        except NativeCrash:
            pass
    return bad, builds


def inputs_before(program: program_io.Program, position: int, run: RunPrefix) -> Dict[str, np.ndarray]:
    """The crashing op's data inputs, from a run of the prefix that ends just before it (feeds excluded:
    both sides get the same golden inputs)."""
    ops = program.top_ops()
    op = ops[position]
    wanted = [n for n in op.data_inputs(program.tensors) if n not in program.feeds]
    if not wanted or position == 0:
        return {}
    return run(ops[position - 1].index, wanted)
