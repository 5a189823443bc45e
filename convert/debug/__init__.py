"""`wherry debug`: find the first layer where an artifact leaves the reference (docs/debug.md).

    program.py   the reference program: its ops in order, and a copy with every tensor made an output
    taps.py      run each side with its intermediate tensors exposed (Paddle, ONNX, Lite x86)
    mapping.py   which artifact tensor is which Paddle variable (name, then consuming node and position)
    locate.py    walk the ops in order and find the first one whose output leaves tolerance
"""
from .locate import DebugReport, debug  # noqa: F401
