"""The bundled example: a small CNN trained on scikit-learn's handwritten digits.

The trained model ships in this folder (``digits_cnn.pdmodel``/``.pdiparams``,
a few KB) with real digit images as golden inputs, so `wherry convert
--example` works offline. ``train_digits`` rebuilds it (named apart from the submodule ``train``, which would shadow it once imported) (tests use it to export the
same network in other formats).
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
MODEL = HERE / "digits_cnn.pdmodel"
INPUTS = HERE / "digits_inputs.npz"     # 16 real test digits, input name "x"
EVAL = HERE / "digits_eval.npz"         # held-out digits with labels, for --eval
CALIB = HERE / "digits_calib.npz"       # 128 training digits, for --calib (never in EVAL or INPUTS)


def train_digits(out_prefix: str, fmt: str = "legacy", epochs: int = 30, seed: int = 0) -> dict:
    """Train the digits CNN and save it as a Paddle inference model (in a child process).

    ``fmt`` is "legacy" (.pdmodel) or "pir" (.json); returns {"accuracy": test accuracy}.
    """
    from wherry.convert import child

    env = {"FLAGS_enable_pir_api": "0" if fmt == "legacy" else "1"}
    value, _, _ = child.run("wherry.convert.example.train:train_and_save",
                            {"out_prefix": str(out_prefix), "epochs": epochs, "seed": seed},
                            tool="paddle", what="training the digits example", env=env)
    return value
