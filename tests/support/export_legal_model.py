"""Export a small legacy model (.pdmodel) that Paddle Lite cannot take as Paddle 3.3.1 writes it.

    python tests/support/export_legal_model.py NAME OUT_PREFIX

One model per row of the legalization table (docs/legalization.md); each crashes Lite without its
pass (or, identity_adaptive_pool, computes a wrong result on ARM) and converts with it. FLAGS_enable_pir_api=0 is read when paddle is imported, hence a
separate process per export. Weights are seeded; outputs are informative on random inputs.
"""
import os
import sys

os.environ["FLAGS_enable_pir_api"] = "0"

import paddle  # noqa: E402
import paddle.nn as nn  # noqa: E402
import paddle.nn.functional as F  # noqa: E402
from paddle.static import InputSpec  # noqa: E402


class Swish(nn.Layer):            # swish loses `beta` at export (clip_extra): opt aborts
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3)

    def forward(self, x):
        return F.swish(self.conv(x))


class InstanceNorm(nn.Layer):     # instance_norm exported without SavedMean/SavedVariance: opt aborts
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3)
        self.norm = nn.InstanceNorm2D(8)

    def forward(self, x):
        return self.norm(self.conv(x))


class TransformerMask(nn.Layer):  # `x > 0` against a 0-D constant and paddle.full([]): the .nb aborts at run time
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        mask = (x > 0).astype("float32")
        return self.proj(x) * mask + paddle.full([], 2.0)


class FunctionalLayerNorm(nn.Layer):  # layer_norm without Scale/Bias: opt segfaults
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(16, 16)

    def forward(self, x):
        return F.layer_norm(self.proj(x), [16])


class Lstm(nn.Layer):             # the RNN dropout state is a zero-size persistable: opt aborts loading it
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(8, 16)

    def forward(self, x):
        return self.rnn(x)[0]


class Gru(nn.Layer):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(8, 16)

    def forward(self, x):
        return self.rnn(x)[0]


class IdentityAdaptivePool(nn.Layer):  # adaptive pool to its input's own size: Lite ARM computes a global mean
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2D(3, 8, 3)

    def forward(self, x):
        y = self.conv(x)  # 4 x 4
        return F.adaptive_avg_pool2d(y, 4) + F.adaptive_avg_pool2d(y, 2).tile([1, 1, 2, 2])


LAYERS = {"identity_adaptive_pool": (IdentityAdaptivePool, [1, 3, 6, 6]), "swish": (Swish, [1, 3, 16, 16]), "instance_norm": (InstanceNorm, [1, 3, 16, 16]),
          "transformer_mask": (TransformerMask, [2, 8]), "functional_layer_norm": (FunctionalLayerNorm, [2, 4, 16]),
          "lstm": (Lstm, [1, 5, 8]), "gru": (Gru, [1, 5, 8])}


def export_layer(name, out):
    cls, shape = LAYERS[name]
    layer = cls()
    layer.eval()
    for sub in layer.sublayers():
        if hasattr(sub, "_dropout_state"):
            # dygraph leaves an RNN's dropout state uninitialized, which dy2static cannot convert; a trained
            # model carries it as a zero-size uint8 buffer, and so is it exported
            sub._dropout_state = paddle.zeros([0], "uint8")
    paddle.jit.save(layer, out, input_spec=[InputSpec(shape, "float32", "x")])


def export_reduce_any(out):
    """reduce_any as Paddle >= 2.6 declares it: `dim` is an int64 list; Lite reads int32 and aborts.
    Built with the static API (paddle.any has no legacy-mode path in Paddle 3.3.1)."""
    from paddle.base.layer_helper import LayerHelper

    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", [2, 4, 8], "float32")
        helper = LayerHelper("reduce_any")
        positive = helper.create_variable_for_type_inference("bool")
        helper.append_op(type="greater_than", inputs={"X": x, "Y": paddle.full([1], 0.5, "float32")},
                         outputs={"Out": positive}, attrs={"axis": -1})
        any_positive = helper.create_variable_for_type_inference("bool")
        helper.append_op(type="reduce_any", inputs={"X": positive}, outputs={"Out": any_positive},
                         attrs={"dim": [1], "keep_dim": False, "reduce_all": False})
        bias = paddle.static.create_parameter([8], "float32", default_initializer=nn.initializer.Normal())
        y = helper.create_variable_for_type_inference("float32")
        helper.append_op(type="elementwise_add", inputs={"X": paddle.cast(any_positive, "float32"), "Y": bias},
                         outputs={"Out": y}, attrs={"axis": -1})
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    paddle.static.save_inference_model(out, [x], [y], exe, program=main)


if __name__ == "__main__":
    name, out_prefix = sys.argv[1:3]
    paddle.seed(0)
    if name == "reduce_any":
        export_reduce_any(out_prefix)
    else:
        export_layer(name, out_prefix)
