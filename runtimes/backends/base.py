"""The small protocol every backend implements (load, describe, run, close)."""
from __future__ import annotations

from typing import Dict, List

from ..specs import TensorSpec


class Backend:
    name = ""
    #: False when the library cannot describe its inputs (a bare Lite .nb): only names are checked.
    specs_complete = True

    def __init__(self):
        self.inputs: List[TensorSpec] = []
        self.outputs: List[TensorSpec] = []
        self.version = None

    def run(self, feeds: Dict[str, "object"]) -> Dict[str, "object"]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass
