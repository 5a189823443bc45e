"""The small protocol every backend implements (load, describe, run, close)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, List, Optional

from ..specs import TensorSpec

if TYPE_CHECKING:
    from numpy.typing import NDArray


class Backend:
    name = ""
    #: False when the library cannot describe its inputs (a bare Lite .nb): only names are checked.
    specs_complete = True

    def __init__(self) -> None:
        self.inputs: List[TensorSpec] = []
        self.outputs: List[TensorSpec] = []
        self.version: Optional[str] = None

    def describe_by_names(self, in_names: List[str], out_names: List[str], inputs: Optional[List[TensorSpec]],
                          outputs: Optional[List[TensorSpec]]) -> None:
        """Set inputs/outputs for a library that knows only tensor names (Paddle Lite's .nb): the specs the
        caller knows (the bundle's manifest) where every name is among them, bare names otherwise."""
        by_name = {s.name: s for s in (inputs or [])}
        if inputs and all(n in by_name for n in in_names):
            self.inputs = [by_name[n] for n in in_names]
        else:
            # A bare .nb does not describe its inputs: only names are known and checked.
            self.specs_complete = False
            self.inputs = [TensorSpec(n, "float32", ()) for n in in_names]
        out_by_name = {s.name: s for s in (outputs or [])}
        self.outputs = [out_by_name.get(n, TensorSpec(n, "float32", ())) for n in out_names]

    def run(self, feeds: Dict[str, NDArray[Any]]) -> Dict[str, NDArray[Any]]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass
