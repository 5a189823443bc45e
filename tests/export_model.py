"""Export a paddle.vision model (random init) as a Paddle inference model.

    python tests/export_model.py NAME FORMAT OUT_PREFIX [SIZE]

FORMAT is "legacy" (.pdmodel, FLAGS_enable_pir_api=0) or "pir" (.json). The
flag is read when paddle is imported, hence a separate process per export.

Weights are re-drawn He-normal (seeded): with Paddle's default init, mobilenet
v2/v3 output ~1e-7 on any input, and parity measured on such outputs proves
nothing. He init keeps activations at unit scale through the whole network.
"""
import os
import sys

name, fmt, out_prefix = sys.argv[1:4]
size = int(sys.argv[4]) if len(sys.argv) > 4 else 224
os.environ["FLAGS_enable_pir_api"] = "0" if fmt == "legacy" else "1"

import numpy as np  # noqa: E402
import paddle  # noqa: E402
from paddle.vision import models  # noqa: E402


def he_init(model, seed=0):
    rng = np.random.default_rng(seed)
    for _, param in model.named_parameters():
        if param.ndim == 4:    # conv [out, in/groups, kh, kw]
            std = np.sqrt(2.0 / np.prod(param.shape[1:]))
        elif param.ndim == 2:  # linear [in, out]
            std = np.sqrt(1.0 / param.shape[0])
        else:
            continue
        param.set_value(rng.normal(0, std, param.shape).astype("float32"))


paddle.seed(0)
kwargs = {"num_classes": 1000}
model = getattr(models, name)(**kwargs)
he_init(model)
model.eval()
paddle.jit.save(model, out_prefix, input_spec=[paddle.static.InputSpec([None, 3, size, size], "float32", "x")])
