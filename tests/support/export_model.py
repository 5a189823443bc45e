"""Export a paddle.vision model (random init) as a Paddle inference model.

    python tests/support/export_model.py NAME FORMAT OUT_PREFIX [SIZE]

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


class OcrLike(paddle.nn.Layer):
    """The op mix of PP-OCR detection/recognition nets in one small model: SE blocks, transposed conv,
    nearest/bilinear upsampling, a sigmoid map head and an attention-style sequence head."""

    def __init__(self):
        super().__init__()
        nn = paddle.nn
        self.stem = nn.Sequential(nn.Conv2D(3, 16, 3, stride=2, padding=1), nn.BatchNorm2D(16), nn.Hardswish())
        self.dw = nn.Sequential(nn.Conv2D(16, 16, 3, padding=1, groups=16), nn.BatchNorm2D(16), nn.ReLU6())
        self.se_fc1 = nn.Conv2D(16, 4, 1)
        self.se_fc2 = nn.Conv2D(4, 16, 1)
        self.down = nn.Sequential(nn.Conv2D(16, 32, 3, stride=2, padding=1), nn.BatchNorm2D(32), nn.Swish())
        self.up = nn.Conv2DTranspose(32, 16, 2, stride=2)
        self.head = nn.Conv2D(48, 1, 1)
        self.norm = nn.LayerNorm(32)
        self.qkv = nn.Linear(32, 96)
        self.cls = nn.Linear(32, 10)

    def forward(self, x):
        F = paddle.nn.functional
        y = self.dw(self.stem(x))
        s = F.hardsigmoid(self.se_fc2(F.relu(self.se_fc1(F.adaptive_avg_pool2d(y, 1)))))
        y = y * s
        d = self.down(y)
        u1 = self.up(d)
        u2 = F.interpolate(d, scale_factor=2, mode="nearest")
        u3 = F.interpolate(u2[:, :16], size=u1.shape[2:], mode="bilinear", align_corners=False)
        det = F.sigmoid(self.head(paddle.concat([u1, u3, y - u1 * 0.5], axis=1)))
        seq = paddle.flatten(d, 2).transpose([0, 2, 1])  # [N, HW, C]
        seq = self.norm(seq)
        q, k, v = paddle.split(self.qkv(seq), 3, axis=-1)
        att = F.softmax(paddle.matmul(q, k, transpose_y=True) * (32 ** -0.5), axis=-1)
        ctx = paddle.matmul(att, v)
        rec = F.softmax(self.cls(paddle.mean(ctx, axis=1, keepdim=True)).squeeze(1), axis=-1)
        return det, rec


class MiscOps(paddle.nn.Layer):
    """Elementwise, activation, reduction and shape ops beyond the vision nets, each translated by its own entry."""

    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 8, 3, padding=1)

    def forward(self, x):
        F = paddle.nn.functional
        y = self.conv(x)
        a = F.gelu(y) + F.leaky_relu(y, 0.1) + paddle.clip(y, -0.5, 0.5) + paddle.tanh(y) + F.silu(y)
        b = paddle.sqrt(paddle.abs(y) + 1.0) + paddle.exp(-paddle.abs(y)) + paddle.log(paddle.abs(y) + 1.0)
        c = paddle.maximum(a, b) - paddle.minimum(a, b) / (paddle.abs(b) + 1.0) + paddle.pow(paddle.abs(a), 2.0)
        c = c + paddle.floor(y * 3.0) + F.sigmoid(y)
        pooled = paddle.sum(c, axis=[2, 3]) + paddle.max(c, axis=[2, 3]) - paddle.min(c, axis=[2, 3])
        z = paddle.unsqueeze(pooled, axis=[2]).squeeze(2)
        cls = paddle.argmax(z, axis=1).astype("float32").unsqueeze(1)
        return z, cls


class Untranslatable(paddle.nn.Layer):
    """An op with no legacy form in wherry's translator (tril: legacy Paddle calls it tril_triu) whose result
    feeds further ops: the error must name it alone (its users are not reported again, nor as values "used
    before they are defined"), and ONNX must still come straight from the PIR program."""

    def __init__(self):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 4, 3)
        self.conv2 = paddle.nn.Conv2D(4, 4, 1)

    def forward(self, x):
        y = paddle.tril(self.conv(x))
        return self.conv2(paddle.nn.functional.relu(y * 2.0)) + y


class RecDynamic(paddle.nn.Layer):
    """A PP-OCR text recognizer in small, exported as PaddleOCR 3.x does (PIR, any width): a conv backbone that
    keeps the width, an SVTR-style neck whose reshapes take the width at run time (shape64 -> slice -> stack ->
    reshape), and a CTC head (fc + softmax over the time steps)."""

    def __init__(self):
        super().__init__()
        nn = paddle.nn
        self.backbone = nn.Sequential(
            nn.Conv2D(3, 16, 3, stride=2, padding=1), nn.BatchNorm2D(16), nn.Hardswish(),
            nn.Conv2D(16, 32, 3, stride=(2, 1), padding=1), nn.BatchNorm2D(32), nn.ReLU(),
            nn.Conv2D(32, 32, 3, stride=(2, 1), padding=1), nn.BatchNorm2D(32), nn.Hardswish())
        self.norm = nn.LayerNorm(32)
        self.qkv = nn.Linear(32, 96)
        self.proj = nn.Linear(32, 32)
        self.neck_out = nn.Conv2D(32, 32, 1)
        self.fc = nn.Linear(32, 40)

    def forward(self, x):
        F = paddle.nn.functional
        z = self.backbone(x)                         # [N, 32, H/8, W/2]
        n, c, h, w = z.shape                         # w (and n) only known at run time
        seq = z.flatten(2).transpose([0, 2, 1])      # [N, h*w, C]
        qkv = self.qkv(self.norm(seq)).reshape([0, -1, 3, 2, c // 2]).transpose([2, 0, 3, 1, 4])
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = F.softmax(paddle.matmul(q, k, transpose_y=True) * (c // 2) ** -0.5, axis=-1)
        ctx = paddle.matmul(att, v).transpose([0, 2, 1, 3]).reshape([0, -1, c])
        seq = seq + self.proj(ctx)
        z = self.neck_out(seq.reshape([0, h, w, c]).transpose([0, 3, 1, 2]))
        z = paddle.mean(z, axis=2).transpose([0, 2, 1])  # [N, W/2, C]: one step per column
        return F.softmax(self.fc(z), axis=-1)


paddle.seed(0)
kwargs = {"num_classes": 1000}
custom = {"ocr_like": OcrLike, "misc_ops": MiscOps, "untranslatable": Untranslatable, "rec_dynamic": RecDynamic}
model = custom[name]() if name in custom else getattr(models, name)(**kwargs)
he_init(model)
model.eval()
shape = [None, 3, size, None] if name == "rec_dynamic" else [None, 3, size, size]  # a recognizer: any width
paddle.jit.save(model, out_prefix, input_spec=[paddle.static.InputSpec(shape, "float32", "x")])
