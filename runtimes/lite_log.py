"""Where in Paddle Lite a crash happened, read from its last log lines.

Lite's fatal checks print the source file and function they fail in, and its op and kernel files are named
after the op (``lite/operators/split_op.cc:48 InferShapeImpl] Check failed: (infer_num < 2)``,
``lite/kernels/x86/rnn_compute.cc``): that names the op a .nb died in without a second run. A check in
the program runner itself (``program.cc ... Check failed: op_->CheckShape()``) names no op; then the crash
site says so, and the first-divergence search (``wherry debug``) is the way to the op.
"""
from __future__ import annotations

import re
from typing import Optional

_OP_FILE = re.compile(r"lite/(?:operators|kernels/\w+)/((\w+?)_(?:op|compute)\.cc):(\d+) (\w+)\]\s*(.*)")
_PROGRAM = re.compile(r"program\.cc\b.*?Check failed: op_->(\w+)\(\)")


def crash_site(log_tail: str) -> Optional[str]:
    """A phrase naming the op (and the check) a Lite crash happened in, or None when the log does not say."""
    for line in reversed(log_tail.splitlines()):
        match = _OP_FILE.search(line)
        if match:
            file, op, line_no, function, what = match.groups()
            detail = f": {what.strip()}" if what.strip() else ""
            return f"in Lite's {op} op ({file}:{line_no} {function}{detail})"
        match = _PROGRAM.search(line)
        if match:
            return (f"in an op's {match.group(1)} (Lite's program runner does not name the op; the "
                    "first-divergence search, wherry debug, finds it)")
    return None
