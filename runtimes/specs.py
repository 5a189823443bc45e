"""TensorSpec: the one description of a model input or output used everywhere."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple


@dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype name and shape; a dynamic dimension is ``None``.

    ``lod_level`` > 0 marks a sequence (LoD) input of Paddle 1.x-style models: its rows are the
    concatenated sequences of a batch, and it is fed with their lengths (``NAME.lengths``, see npz.py).
    """

    name: str
    dtype: str
    shape: Tuple[Optional[int], ...]
    lod_level: int = 0

    def to_json(self) -> Dict[str, Any]:
        data: Dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.lod_level:
            data["lod_level"] = self.lod_level
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "TensorSpec":
        import numpy as np  # lazily: `import runtimes` stays cheap (the pytest plugin loads it in every run)

        shape = tuple(None if d is None or d < 0 else int(d) for d in data["shape"])
        return cls(str(data["name"]), str(np.dtype(data["dtype"])), shape, int(data.get("lod_level") or 0))

    def accepts_shape(self, shape: Sequence[Optional[int]]) -> bool:
        if len(shape) != len(self.shape):
            return False
        return all(want is None or want == got for want, got in zip(self.shape, shape))

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]" + (f" (sequences, LoD level {self.lod_level})" if self.lod_level else "")
