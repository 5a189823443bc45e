"""TensorSpec: the one description of a model input or output used everywhere."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class TensorSpec:
    """Name, numpy dtype name and shape; a dynamic dimension is ``None``."""

    name: str
    dtype: str
    shape: Tuple[Optional[int], ...]

    def to_json(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}

    @classmethod
    def from_json(cls, data: dict) -> "TensorSpec":
        import numpy as np  # lazily: `import runtimes` stays cheap (the pytest plugin loads it in every run)

        shape = tuple(None if d is None or d < 0 else int(d) for d in data["shape"])
        return cls(str(data["name"]), str(np.dtype(data["dtype"])), shape)

    def accepts_shape(self, shape) -> bool:
        if len(shape) != len(self.shape):
            return False
        return all(want is None or want == got for want, got in zip(self.shape, shape))

    def describe(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype}[{dims}]"
