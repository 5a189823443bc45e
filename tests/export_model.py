"""Export a paddle.vision model (random init) as a Paddle inference model.

    python tests/export_model.py NAME FORMAT OUT_PREFIX [SIZE]

FORMAT is "legacy" (.pdmodel, FLAGS_enable_pir_api=0) or "pir" (.json). The
flag is read when paddle is imported, hence a separate process per export.
"""
import os
import sys

name, fmt, out_prefix = sys.argv[1:4]
size = int(sys.argv[4]) if len(sys.argv) > 4 else 224
os.environ["FLAGS_enable_pir_api"] = "0" if fmt == "legacy" else "1"

import paddle  # noqa: E402
from paddle.vision import models  # noqa: E402

paddle.seed(0)
kwargs = {"num_classes": 1000}
model = getattr(models, name)(**kwargs)
model.eval()
paddle.jit.save(model, out_prefix, input_spec=[paddle.static.InputSpec([None, 3, size, size], "float32", "x")])
