"""The calibration samples as an edge tool's child reads them (OpenVINO, LiteRT, RKNN): the ``--calib``
arrays the conversion wrote to one ``.npz``, one array per model input, every input present.

Imported inside the tool environments' children, so it needs numpy and wherry's errors only."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Iterable, Union

import numpy as np

from wherry.runtimes.errors import WherryError


def read(calib_npz: Union[str, Path], names: Iterable[str]) -> Dict[str, np.ndarray]:
    """Every array of ``calib_npz``; one readable error naming the inputs it lacks."""
    with np.load(calib_npz) as data:
        calib = {k: data[k] for k in data.files}
    lacking = sorted(set(names) - set(calib))
    if lacking:
        raise WherryError(f"the calibration data has no input {', '.join(lacking)}")
    return calib
