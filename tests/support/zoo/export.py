"""Export zoo families:  python tests/support/zoo/export.py FORMAT OUT_DIR [NAME ...]

FORMAT is "pir" or "legacy" (FLAGS_enable_pir_api=0, read when paddle is imported: one process per
format). Writes OUT_DIR/NAME/model.{json|pdmodel}, model.pdiparams and inputs.npz; a family Paddle
itself cannot export in that format gets OUT_DIR/NAME/export_error.txt instead.
"""
import importlib
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def he_init(layer, seed=0):
    rng = np.random.default_rng(seed)
    for _, param in layer.named_parameters():
        if param.ndim == 4:      # conv [out, in/groups, kh, kw]
            std = np.sqrt(2.0 / np.prod(param.shape[1:]))
        elif param.ndim == 2:    # linear [in, out], embeddings, rnn weights
            std = np.sqrt(1.0 / param.shape[-1] if "cell" in param.name else 1.0 / param.shape[0])
        else:
            continue
        param.set_value(rng.normal(0, std, param.shape).astype("float32"))


def inputs_for(name, seed=0):
    from zoo import FAMILIES

    rng = np.random.default_rng(seed)
    feeds = {}
    for input_name, shape, dtype, low, high in FAMILIES[name][2]:
        if dtype.startswith("int"):
            feeds[input_name] = rng.integers(low, high, shape).astype(dtype)
            feeds[input_name][:, -3:] = 0  # padding at the end of each sequence: the mask matters
        else:
            feeds[input_name] = rng.uniform(low, high, shape).astype(dtype)
    return feeds


def export(name, out_dir):
    import paddle

    from zoo import FAMILIES

    module, cls, inputs = FAMILIES[name]
    stale = os.path.join(out_dir, "export_error.txt")
    if os.path.exists(stale):
        os.remove(stale)
    paddle.seed(0)
    layer = getattr(importlib.import_module(f"zoo.{module}"), cls)()
    he_init(layer)
    layer.eval()
    specs = [paddle.static.InputSpec(shape, dtype, n) for n, shape, dtype, _, _ in inputs]
    os.makedirs(out_dir, exist_ok=True)
    if os.environ["FLAGS_enable_pir_api"] == "1":
        layer = paddle.jit.to_static(layer, input_spec=specs, full_graph=True)
    # legacy: plain jit.save, as legacy users export (to_static(full_graph=True) under the legacy flag
    # breaks in Paddle 3.3.1 on ordinary ops: "argument must be Value, but got Variable")
    paddle.jit.save(layer, os.path.join(out_dir, "model"), input_spec=specs)
    np.savez(os.path.join(out_dir, "inputs.npz"), **inputs_for(name))


def export_each(fmt, out, names, export_one):
    """``export_one(name, OUT/NAME)`` for each family; one Paddle itself cannot export gets
    OUT/NAME/export_error.txt (the matrix shows it) and the others go on. Shared with tests/support/upstream."""
    for name in names:
        folder = os.path.join(out, name)
        try:
            export_one(name, folder)
        except Exception as exc:  # noqa: BLE001 - recorded: the matrix shows what Paddle itself cannot export
            os.makedirs(folder, exist_ok=True)
            lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
            message = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
            with open(os.path.join(folder, "export_error.txt"), "w") as fh:
                fh.write(message + "\n")
            print(f"EXPORT FAILED {name} ({fmt}): {message}", file=sys.stderr)
    return 0


def main(argv):
    fmt, out = argv[0], argv[1]
    os.environ["FLAGS_enable_pir_api"] = "0" if fmt == "legacy" else "1"
    from zoo import FAMILIES

    return export_each(fmt, out, argv[2:] or sorted(FAMILIES), export)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
