"""How long a native run may take before it is stopped: a broken artifact (a bit-flipped ``.nb`` whose hash
was re-sealed makes Paddle Lite loop forever) must end in a typed error, not hang a check for the 600 s
default.

convert records how long the golden run took (Paddle Inference running the golden inputs through the
original model, its process start and load not counted: ``golden.seconds`` in the manifest). Loading or
running an artifact of the same model is allowed ``FACTOR`` times that, never less than ``FLOOR_S`` (a
child process starting and importing its runtime on a busy machine, the load of a large model, a runtime
several times slower than Paddle Inference) nor more than ``CEILING_S`` (a manifest's claim cannot make a
check hang for days). A bundle that records no golden run time gets ``DEFAULT_S``. ``--timeout S``
(check) and ``--check-timeout S`` (convert) override the derived limit; 0 means none. The emulated board
and the browser keep ``DEFAULT_S``: their speed has nothing to do with the host's golden run, and a remote
runner's ``--job-timeout`` bounds what it runs.
"""
from __future__ import annotations

import math
from typing import Optional, Union

from .errors import InputError

DEFAULT_S = 600.0   # a bundle without a recorded golden run time (older wherry, hand-made bundles)
FLOOR_S = 60.0
FACTOR = 50.0
CEILING_S = 3600.0
AUTO = "auto"       # the limit derived from the bundle, as check's and convert's default


def derived(golden_seconds: Optional[float]) -> float:
    """The limit for one load or one run of an artifact whose original model's golden run took this long."""
    if golden_seconds is None or not math.isfinite(golden_seconds) or golden_seconds < 0:
        return DEFAULT_S
    return min(CEILING_S, max(FLOOR_S, FACTOR * golden_seconds))


def choose(requested: Union[None, str, float], golden_seconds: Optional[float]) -> Optional[float]:
    """The limit in seconds (None: no limit) for ``requested``: AUTO derives it from the golden run time,
    None, a number <= 0 or infinity means no limit, a positive number is taken as it is; NaN is an InputError."""
    if requested == AUTO:
        return derived(golden_seconds)
    if requested is None:
        return None
    seconds = float(requested)
    if math.isnan(seconds):   # no comparison holds for NaN: it reached the child's select() as a timeout
        raise InputError(f"a time limit of {requested!r} is not a number of seconds",
                         "pass the limit in seconds, or 0 for none")
    return seconds if 0 < seconds < math.inf else None
