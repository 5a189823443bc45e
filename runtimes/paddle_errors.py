"""Paddle's error reports in one line.

Paddle (Inference, static executor, PTQ) raises exceptions whose text is a C++ traceback, an "Error
Message Summary" block and then the real cause::

    (InvalidArgument) Input(X) of GRUOp should be a LoDTensor with one LoD level ...
      [Hint: Expected x_lod.size() == 1UL, but received ...] (at /paddle/paddle/fluid/operators/gru_op.cc:89)
      [operator < gru > error]

``summarize`` keeps the cause, Paddle's own hint and the op it failed in. It imports nothing from
Paddle, so the converter, the runtime and child processes all use it.
"""
from __future__ import annotations

import re
from typing import Optional, Tuple

_CAUSE = re.compile(r"^\s*(?:\w+Error: )?\((\w+)\) (.+)$")
_ERROR_LINE = re.compile(r"^\s*(\w+Error): (.+)$")   # Paddle 3 also writes "InvalidArgumentError: ..."
_HINT = re.compile(r"\[Hint: (.+?)\](?: \(at [^)]*\))?")
_AT = re.compile(r"\s*\(at /[^)]*\)")
_OP = re.compile(r"\[operator < (\w+) > error\]")


def summarize(text: str) -> Tuple[str, Optional[str]]:
    """(one-line cause, Paddle's hint or None) of a Paddle error text; the last line when none is found."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    if not lines:
        return "unknown Paddle error", None
    cause = next((m for m in (_CAUSE.match(ln) for ln in reversed(lines)) if m), None)
    if cause is None:
        cause = next((m for m in (_ERROR_LINE.match(ln) for ln in reversed(lines))
                      if m and m.group(2) not in ("In user code:",) and "Traceback" not in m.group(2)), None)
    op = next((m.group(1) for m in map(_OP.search, reversed(lines)) if m), None)
    hint = next((m.group(1) for m in map(_HINT.search, reversed(lines)) if m), None)
    if cause is None:
        return _AT.sub("", lines[-1])[:400], hint
    message = _AT.sub("", _HINT.sub("", cause.group(2))).strip()
    kind = cause.group(1).replace("Error", "") if cause.group(1).endswith("Error") else cause.group(1)
    message = f"{message} ({kind}" + (f", in op {op})" if op else ")")
    return message[:400], hint


def is_paddle_error(text: str) -> bool:
    text = str(text)
    return bool(_OP.search(text) or "Error Message Summary" in text or "C++ Traceback" in text
                or any(_CAUSE.match(ln) for ln in text.splitlines()))


# How Paddle says it cannot run an op at all (Paddle 3 dropped most Paddle 1.x LoD kernels):
# "Operator (sequence_unpad) is not registered." (no op), "There are no kernels which are registered in
# the sequence_reverse operator." (an op without a kernel), "The kernel `x` is not registered." (PHI)
_MISSING = (re.compile(r"Operator \((\w+)\) is not registered"),
            re.compile(r"There are no kernels which are registered in the (\w+) operator"),
            re.compile(r"[Kk]ernel `(\w+)` is not registered"))


def missing_op(text: str) -> Optional[str]:
    """The op a Paddle error says the installed Paddle has no op or kernel for, else None."""
    for pattern in _MISSING:
        found = pattern.search(str(text))
        if found:
            return found.group(1)
    return None
