"""Export upstream families:  UPSTREAM_PYTHON tests/support/upstream/export.py FORMAT OUT_DIR [NAME ...]

Runs in the upstream virtual environment (venv.py), never in the project's: it imports the upstream
package, builds the family with random He-normal weights at its real sizes, wraps it as the upstream
export tool does and saves it with paddle.jit.save and the family's input_spec (dynamic dims None).
FORMAT is "pir" or "legacy" (FLAGS_enable_pir_api is read when paddle is imported: one process per
format). Writes OUT_DIR/NAME/model.{json|pdmodel}, model.pdiparams and inputs.npz, or export_error.txt.
"""
import importlib
import os
import sys
import zlib  # noqa: F401 - before paddle: see below

import numpy as np

# Paddle 2.6.2's libpaddle.so exports the zlib it bundles (inflateReset2...): Python's zlib module, loaded
# after it, binds to those and dies (ppdet's import of pycocotools segfaults in inflateReset2, or raises
# "zlib.error: Error -2 ... inconsistent stream state"). Loaded first, it keeps the system's libz.

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _import_path_for(package):
    """PaddleClas' wheel ships its training repo as paddleclas/ppcls (and paddleclas/__init__ pulls the
    whole predictor: cv2, faiss...); the export tool imports it as the top-level package ``ppcls``."""
    if package == "paddleclas":
        import importlib.util
        spec = importlib.util.find_spec("paddleclas")
        sys.path.insert(0, os.path.dirname(spec.origin))


def build(family):
    import paddle  # noqa: F401 - loaded before the upstream package, as its own tools do
    _import_path_for(family.package)
    namespace = vars(importlib.import_module(family.module))
    if family.package == "paddlenlp":
        from paddlenlp.transformers import ErnieConfig  # named by the builder
        namespace = {**namespace, "ErnieConfig": ErnieConfig}
    layer = eval(family.builder, dict(namespace))  # noqa: S307 - our own table, not input
    return Wrapped(layer, family.wrap, len(family.inputs))


def calibrate_batch_norm(layer, family, batch=4):
    """Random weights leave activations shrinking block by block where real weights keep them in range
    (PP-LCNet's hardswish halves a small signal: its softmax came out uniform to 1e-7, an uninformative
    golden). Real models' BN statistics normalize each channel; so set every BN's running mean/var from
    one pass over a batch of random inputs (momentum 0), then go back to eval."""
    import paddle

    norms = [m for m in layer.sublayers() if isinstance(m, paddle.nn.layer.norm._BatchNormBase)]
    if not norms:
        return
    for m in norms:
        m._momentum = 0.0
    feeds = inputs_for(family, seed=1, batch=batch)
    layer.eval()  # only the norms in training mode: a ppdet architecture in training mode wants its targets
    for m in norms:
        m.train()
    with paddle.no_grad():
        layer(*[paddle.to_tensor(v) for v in feeds.values()])
    for m in norms:
        m.eval()


def deploy(layer):
    """What PaddleDetection's export tool does before saving (Trainer._get_infer_cfg_and_input_spec): each
    sublayer's own convert_to_deploy (PP-YOLOE's RepVGG blocks fold their 3x3 and 1x1 branches into one conv)."""
    for sub in layer.sublayers():
        if hasattr(sub, "convert_to_deploy"):
            sub.convert_to_deploy()


def _wrapped_class():
    import paddle

    class _Wrapped(paddle.nn.Layer):
        """What the export tool appends: PaddleClas' softmax, PaddleSeg's first logit (--output_op none)."""

        def __init__(self, inner, how):
            super().__init__()
            self.inner, self.how = inner, how

        def post(self, out):
            if self.how == "softmax":
                return paddle.nn.functional.softmax(out, axis=-1)  # Paddle 2.6's dy2static: no closure names
            return out[0] if isinstance(out, (list, tuple)) else out

    class _One(_Wrapped):  # to_static reads the named arguments of forward (no *args)
        def forward(self, x):
            return self.post(self.inner(x))

    class _Two(_Wrapped):
        def forward(self, input_ids, token_type_ids):
            return self.post(self.inner(input_ids, token_type_ids=token_type_ids))

    class _Detector(_Wrapped):  # ppdet architectures take the reader's dict and return {'bbox', 'bbox_num'}
        def forward(self, image, scale_factor=None):
            self.inner.export_nms = self.how != "detector-nonms"  # PaddleDetection's export.nms option
            if scale_factor is None:  # pruned from the input_spec: only the NMS reads it
                scale_factor = paddle.ones([1, 2], "float32")
            out = self.inner({"image": image, "scale_factor": scale_factor,
                              "im_shape": paddle.shape(image)[2:].astype("float32").unsqueeze(0)})
            if self.inner.export_nms:
                return out["bbox"], out["bbox_num"]
            # PicoDet names its raw scores; a YOLOv3 head with exclude_nms returns them under bbox_num
            return out["bbox"], out["scores"] if "scores" in out else out["bbox_num"]

    return {"detector": _Detector, "detector-nonms": _Detector, 1: _One, 2: _Two}


def Wrapped(inner, how, n_inputs):  # noqa: N802 - classes built after paddle is imported with the right flag
    classes = _wrapped_class()
    return classes.get(how, classes.get(n_inputs))(inner, how)


def inputs_for(family, seed=0, batch=None):
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, _, dtype, shape, low, high in family.inputs:
        shape = [batch or shape[0], *shape[1:]]
        if dtype.startswith("int"):
            feeds[name] = rng.integers(low, high + 1 if high <= 1 else high, shape).astype(dtype)
        else:
            feeds[name] = rng.uniform(low, high, shape).astype(dtype)
    return feeds


def export(name, out_dir):
    import paddle

    from upstream import FAMILIES

    family = FAMILIES[name]
    stale = os.path.join(out_dir, "export_error.txt")
    if os.path.exists(stale):
        os.remove(stale)
    paddle.seed(0)
    layer = build(family)
    from zoo.export import he_init   # the zoo's He-normal draw, at the upstream layer's real sizes
    # parameters the model fixes itself (stop_gradient: PP-YOLOE's DFL projection, a linspace a checkpoint
    # keeps as it is) are no weights to draw
    fixed = {n: p.numpy() for n, p in layer.named_parameters() if p.stop_gradient}
    he_init(layer)
    for n, p in layer.named_parameters():
        if n in fixed:
            p.set_value(fixed[n])
    calibrate_batch_norm(layer, family)
    if family.wrap.startswith("detector"):
        deploy(layer)
    specs = [paddle.static.InputSpec(spec, dtype, n) for n, spec, dtype, _, _, _ in family.inputs]
    os.makedirs(out_dir, exist_ok=True)
    if os.environ["FLAGS_enable_pir_api"] == "1":
        layer = paddle.jit.to_static(layer, input_spec=specs, full_graph=True)
    paddle.jit.save(layer, os.path.join(out_dir, "model"), input_spec=specs)
    np.savez(os.path.join(out_dir, "inputs.npz"), **inputs_for(family))


def main(argv):
    fmt, out = argv[0], argv[1]
    os.environ["FLAGS_enable_pir_api"] = "0" if fmt == "legacy" else "1"
    from upstream import FAMILIES
    from zoo.export import export_each

    return export_each(fmt, out, argv[2:] or sorted(FAMILIES), export)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
