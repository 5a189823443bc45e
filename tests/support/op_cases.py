"""Small single-op / few-op Paddle programs, one per translator: the PIR translator's test cases.

    python tests/support/op_cases.py FORMAT OUT_DIR [CASE ...]

FORMAT is pir, legacy, or feed (a legacy export translated to PIR by Paddle itself: pd_op.feed inputs);
exports every case (or the named ones) as OUT_DIR/CASE/model.{json|pdmodel} + model.pdiparams with
inputs OUT_DIR/CASE/inputs.npz, in one process (the PIR flag is read when paddle is imported).
Adding an op to the translator adds one entry to CASES.
"""
from __future__ import annotations

import os
import sys

import numpy as np

# name -> (forward(self, *inputs), inputs: [(name, shape, dtype, low, high)], layers to build in __init__)
CASES = {}


def case(*inputs, layers=None):
    """Register ``fn`` as a case (called after the def: dy2static re-runs decorators on the source)."""
    def register(fn):
        CASES[fn.__name__] = (fn, inputs, layers or (lambda nn: {}))
        return fn
    return register


F32 = "float32"


def f(name, *shape):
    return (name, list(shape), F32, -2.0, 2.0)


def i64(name, low, high, *shape):
    return (name, list(shape), "int64", low, high)


def dyn(name, spec, *shapes):
    """A float32 input exported with dynamic dims (None in ``spec``) and fed at each of ``shapes``
    (inputs.npz holds the first, inputs.K.npz the K-th): run-time shape arithmetic must hold at all."""
    return (name, list(spec), F32, -2.0, 2.0, [list(s) for s in shapes])


# ------------------------------------------------------------------ cases
# Each forward uses `paddle` from module scope (imported in main, after the PIR flag is set).

def embedding(self, ids):
    return self.emb(ids) + self.zero


case(i64("ids", 0, 20, 2, 6), layers=lambda nn: {"emb": nn.Embedding(20, 8)})(embedding)


def compare_where(self, x, y):
    x = x + self.zero
    return (paddle.where(x > y, x, y), paddle.where(x <= y, x * 2.0, y - 1.0),
            (x == y).astype("float32") + (x != y).astype("float32") + (x >= 0.5).astype("float32")
            + (x < -0.5).astype("float32"), paddle.logical_and(x > 0, y > 0).astype("float32"),
            paddle.logical_or(x > 1, paddle.logical_not(y > 0)).astype("float32"))


case(f("x", 2, 3, 4), f("y", 2, 3, 4))(compare_where)


def stack_unstack(self, x):
    x = x + self.zero
    a, b, c = paddle.unstack(x, axis=1)
    return paddle.stack([c, a, b], axis=0), paddle.stack([a, b], axis=-1)


case(f("x", 2, 3, 4))(stack_unstack)


def arange_cumsum_flip(self, x):
    x = x + self.zero
    r = paddle.arange(0, 10, 2, dtype="float32")
    return x + r, paddle.cumsum(x, axis=1), paddle.flip(x, axis=[0, 1]), paddle.cumsum(x, axis=0)


case(f("x", 2, 5))(arange_cumsum_flip)


def gather_ops(self, x, idx, nd):
    x = x + self.zero
    return paddle.gather(x, idx, axis=0), paddle.gather(x, idx, axis=1), paddle.gather_nd(x, nd)


case(f("x", 4, 6), i64("idx", 0, 4, 3), i64("nd", 0, 4, 3, 2))(gather_ops)


def topk_argsort(self, x):
    x = x + self.zero
    v, i = paddle.topk(x, 3, axis=-1)
    v2, i2 = paddle.topk(x, 2, axis=0, largest=False)
    return v, i, v2, i2, paddle.argsort(x, axis=1), paddle.argsort(x, axis=0, descending=True), paddle.sort(x, axis=1)


case(f("x", 3, 7))(topk_argsort)


def expand_tile(self, x):
    x = x + self.zero
    return paddle.expand(x, [2, 3, 4]), paddle.tile(x, [1, 2, 3]), paddle.expand_as(x, paddle.zeros([2, 5, 4]))


case(f("x", 2, 1, 4))(expand_tile)


def strided_slice(self, x):
    x = x + self.zero
    return x[:, 1:7:2, ::3], x[:, ::-1, 1:5], x[0, 2:, :]


case(f("x", 2, 8, 6))(strided_slice)


def pads(self, x):
    x = x + self.zero
    F = paddle.nn.functional
    return (F.pad(x, [1, 2, 0, 1], mode="constant", value=0.5), F.pad(x, [2, 1, 1, 2], mode="reflect"),
            F.pad(x, [1, 1, 2, 2], mode="replicate"))


case(f("x", 1, 2, 5, 6))(pads)


def norms(self, x):
    x = x + self.zero
    return self.prelu(x), self.gn(x), self.inorm(x), paddle.nn.functional.prelu(x, paddle.to_tensor([0.2]))


case(f("x", 2, 4, 5, 5), layers=lambda nn: {"prelu": nn.PReLU(4, 0.1), "gn": nn.GroupNorm(2, 4),
                                             "inorm": nn.InstanceNorm2D(4)})(norms)


def einsum(self, x, y):
    x = x + self.zero
    return paddle.einsum("bij,bjk->bik", x, y), paddle.einsum("bij->bji", x)


case(f("x", 2, 3, 4), f("y", 2, 4, 5))(einsum)


def scatter(self, x, ids, u):
    x = x + self.zero
    return paddle.scatter(x, ids, u, overwrite=True), paddle.scatter_nd_add(x, ids.unsqueeze(-1), u)


case(f("x", 5, 3), i64("ids", 0, 5, 2), f("u", 2, 3))(scatter)


def yolo_box(self, x):
    x = x + self.zero
    img_size = paddle.to_tensor([[64, 64], [32, 48]], dtype="int32")
    xx = paddle.concat([x, x, x, x, x, x[:, :2]], axis=1)  # 3 anchors x (5 + 1 class) = 18 channels, here 17+1
    xx = paddle.concat([xx, x[:, :1]], axis=1)
    boxes, scores = paddle.vision.ops.yolo_box(xx, img_size, anchors=[10, 13, 16, 30, 33, 23], class_num=1,
                                                conf_thresh=0.01, downsample_ratio=8)
    return boxes, scores


case(f("x", 2, 3, 8, 8))(yolo_box)


def roi_align(self, x):
    x = x + self.zero
    boxes = paddle.to_tensor([[1.0, 1.0, 9.0, 12.0], [4.0, 2.0, 14.0, 8.0]])
    num = paddle.to_tensor([2], dtype="int32")
    return paddle.vision.ops.roi_align(x, boxes, num, output_size=3, spatial_scale=1.0, sampling_ratio=2,
                                       aligned=True)


case(f("x", 1, 4, 16, 16))(roi_align)


def misc_shape(self, x):
    x = x + self.zero
    return (paddle.full_like(x, 2.0) + paddle.ones_like(x), paddle.reshape(x, [3, 4]).t(),
            paddle.squeeze(paddle.unsqueeze(x, [0, 2]), [0]), paddle.sum(x, axis=-1, keepdim=True),
            paddle.prod(x, axis=1), paddle.mean(x * x), paddle.nn.functional.one_hot(
                paddle.argmax(x, axis=-1), 4))


case(f("x", 1, 3, 4))(misc_shape)


def rnns(self, x):
    x = x + self.zero
    y, (h, c) = self.lstm(x)
    z, hg = self.gru(x)
    s, hs = self.rnn(x)
    return y, h, c, z, hg, s


case(f("x", 2, 6, 4), layers=lambda nn: {"lstm": nn.LSTM(4, 5, num_layers=2, direction="bidirect"),
                                          "gru": nn.GRU(4, 3), "rnn": nn.SimpleRNN(4, 3)})(rnns)


def if_else(self, x):
    x = x + self.zero
    if paddle.mean(x) > 0:  # both branches run: the second if takes the other one
        y = x * 2.0 + 1.0
    else:
        y = paddle.tanh(x) - 1.0
    if paddle.mean(x) < 0:
        z = y * 3.0
    else:
        z = y - x
    return y, z


case(f("x", 2, 3))(if_else)


def while_loop(self, x):
    x = x + self.zero
    i = paddle.zeros([1], dtype="int64")
    s = x
    while i < 3:
        s = s * 0.5 + paddle.tanh(s)
        i = i + 1
    return s, i


case(f("x", 2, 3))(while_loop)


# Shapes computed at run time (shape64 -> slice -> stack/arithmetic) feeding the legacy ops' tensor inputs

def runtime_reshape(self, x):
    y = self.conv(x) + self.zero
    n, c, h, w = y.shape  # n, h, w are tensors at run time
    dims = paddle.shape(y)  # the shape as one tensor, cut and joined (shape64 -> slice -> concat), as PP-OCR's nets do
    return (y.reshape([0, -1, w]), y.transpose([0, 3, 1, 2]).reshape([n, w, c * h]), y.reshape([n, c, h * 2, w // 2]),
            y.reshape(paddle.concat([dims[:1], paddle.full([1], -1, dims.dtype), dims[3:]])))


case(dyn("x", (None, 3, None, None), (1, 3, 8, 12), (2, 3, 6, 20)),
     layers=lambda nn: {"conv": nn.Conv2D(3, 4, 3, padding=1)})(runtime_reshape)


def runtime_slice(self, x):
    x = x + self.zero
    n, c, h, w = x.shape
    return x[:, :, : h // 2, w // 4:], x[:, :, :, : w % 5 + 1], x[:, 1:, h - 3:]


case(dyn("x", (None, 3, None, None), (1, 3, 8, 12), (2, 3, 6, 17)))(runtime_slice)


def runtime_full(self, x):
    x = x + self.zero
    n, c, h, w = x.shape
    return (paddle.full([n, h, 1], 0.5) + x[:, 0, :, :1], paddle.zeros([n, w]) + x[:, 0, 0, :],
            paddle.full([n, 2], paddle.mean(x)))


case(dyn("x", (None, 3, None, None), (1, 3, 8, 12), (2, 3, 6, 20)))(runtime_full)


def runtime_expand_tile(self, x):
    x = x + self.zero
    n, c, h, w = x.shape
    return (paddle.expand(x[:, :, :, :1], [n, c, h, w]), paddle.tile(x[:, :, :1, :1], [1, 1, h, w]),
            paddle.expand(x[:1], [n * 2, c, h, w]))


case(dyn("x", (None, 3, None, None), (1, 3, 8, 12), (2, 3, 6, 20)))(runtime_expand_tile)


def runtime_interp(self, x, y):
    F = paddle.nn.functional
    x = x + self.zero
    return (F.interpolate(x, size=y.shape[2:], mode="bilinear", align_corners=False),
            F.interpolate(x, size=paddle.shape(y)[2:], mode="nearest"))


case(dyn("x", (None, 2, None, None), (1, 2, 4, 5), (2, 2, 3, 7)),
     dyn("y", (None, 1, None, None), (1, 1, 8, 10), (2, 1, 9, 13)))(runtime_interp)


def runtime_scalars(self, x, y):
    x = x + self.zero
    lo, hi = paddle.min(y), paddle.max(y)
    return (paddle.scale(x, scale=paddle.mean(y), bias=0.5), paddle.clip(x, min=lo * 0.5, max=hi * 0.5),
            paddle.scale(x, scale=hi, bias=0.25, bias_after_scale=False))


case(dyn("x", (None, 3, None), (2, 3, 4), (1, 3, 9)), f("y", 5))(runtime_scalars)


# ------------------------------------------------------------------ export

def _layer(name):
    import paddle.nn as nn

    forward, _, layers = CASES[name]

    class Case(nn.Layer):
        def __init__(self):
            super().__init__()
            for attr, layer in layers(nn).items():
                setattr(self, attr, layer)

    Case.forward = forward
    layer = Case()
    # every case has a parameter (wherry expects the model/parameter file pair, as real models have)
    layer.zero = layer.create_parameter([1], default_initializer=nn.initializer.Constant(0.0))
    return layer


def input_sets(name) -> int:
    """How many input sets a case is checked at (one per shape of its dynamic inputs)."""
    return max(len(spec[5]) if len(spec) > 5 else 1 for spec in CASES[name][1])


def make_inputs(name, seed=0, which=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    for input_name, shape, dtype, low, high, *shapes in CASES[name][1]:
        shape = shapes[0][which] if shapes else shape
        if dtype.startswith("int"):
            feeds[input_name] = rng.integers(low, high, shape).astype(dtype)
        else:
            feeds[input_name] = rng.uniform(low, high, shape).astype(dtype)
    return feeds


def to_feed_program(prefix):
    """Replace a legacy export by the PIR program Paddle's own translator makes of it (paddle.pir.translate_to_pir):
    its inputs are pd_op.feed ops, not pd_op.data, and Paddle Inference runs it as it is."""
    from paddle.base import core

    paddle.enable_static()
    try:
        program, _, _ = paddle.static.load_inference_model(prefix, paddle.static.Executor(paddle.CPUPlace()))
        core.serialize_pir_program(paddle.pir.translate_to_pir(program.desc), prefix + ".json")
    finally:
        paddle.disable_static()
    os.remove(prefix + ".pdmodel")


def export(name, out_dir, fmt="pir"):
    import paddle

    paddle.seed(0)
    layer = _layer(name)
    rng = np.random.default_rng(1)
    for pname, param in layer.named_parameters():
        if pname == "zero":
            continue
        param.set_value(rng.normal(0, 0.5, param.shape).astype("float32"))
    layer.eval()
    specs = [paddle.static.InputSpec(spec[1], spec[2], spec[0]) for spec in CASES[name][1]]
    os.makedirs(out_dir, exist_ok=True)
    paddle.jit.save(paddle.jit.to_static(layer, input_spec=specs, full_graph=True), os.path.join(out_dir, "model"))
    if fmt == "feed":
        to_feed_program(os.path.join(out_dir, "model"))
    np.savez(os.path.join(out_dir, "inputs.npz"), **make_inputs(name))
    for which in range(1, input_sets(name)):
        np.savez(os.path.join(out_dir, f"inputs.{which}.npz"), **make_inputs(name, which=which))



def main(argv):
    fmt, out = argv[0], argv[1]
    os.environ["FLAGS_enable_pir_api"] = "0" if fmt in ("legacy", "feed") else "1"
    global paddle
    import paddle  # noqa: F401

    failed = []
    for name in argv[2:] or sorted(CASES):
        try:
            export(name, os.path.join(out, name), fmt)
        except Exception as exc:  # noqa: BLE001 - report every case that Paddle itself cannot export
            failed.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    for line in failed:
        print("EXPORT FAILED", line, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
