"""PP-LiteSeg-style segmentation: STDC-like encoder, simple pyramid pooling (SPPM), unified attention
fusion (UAFM, spatial attention from channel mean/max), bilinear upsampling to the input size."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.common import ConvBN


class STDC(nn.Layer):
    """Convolutions with halving widths whose outputs are concatenated (the first one pooled when strided)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = ConvBN(cin, cout // 2, 1, act="relu")
        self.c2 = ConvBN(cout // 2, cout // 4, 3, stride, act="relu")
        self.c3 = ConvBN(cout // 4, cout // 4, 3, act="relu")
        self.pool = nn.AvgPool2D(3, 2, 1) if stride == 2 else None

    def forward(self, x):
        a = self.c1(x)
        b = self.c2(a)
        c = self.c3(b)
        return paddle.concat([self.pool(a) if self.pool is not None else a, b, c], axis=1)


class SPPM(nn.Layer):
    def __init__(self, c, mid):
        super().__init__()
        self.stages = nn.LayerList([ConvBN(c, mid, 1, act="relu") for _ in (1, 2, 4)])
        self.out = ConvBN(mid, mid, 3, act="relu")

    def forward(self, x):
        size = x.shape[2:]
        y = None
        for bins, conv in zip((1, 2, 4), self.stages):
            z = F.interpolate(conv(F.adaptive_avg_pool2d(x, bins)), size=size, mode="bilinear", align_corners=False)
            y = z if y is None else y + z
        return self.out(y)


class UAFM(nn.Layer):
    def __init__(self, c_low, c):
        super().__init__()
        self.low = ConvBN(c_low, c, 3, act="relu")
        self.att = nn.Sequential(ConvBN(4, 2, 3, act="relu"), ConvBN(2, 1, 3, act=None))
        self.out = ConvBN(c, c, 3, act="relu")

    def forward(self, low, high):
        low = self.low(low)
        high = F.interpolate(high, size=low.shape[2:], mode="bilinear")
        stats = paddle.concat([low.mean(axis=1, keepdim=True), low.max(axis=1, keepdim=True),
                               high.mean(axis=1, keepdim=True), high.max(axis=1, keepdim=True)], axis=1)
        a = F.sigmoid(self.att(stats))
        return self.out(low * a + high * (1 - a))


class LiteSeg(nn.Layer):
    def __init__(self, classes=4):
        super().__init__()
        self.stem = nn.Sequential(ConvBN(3, 16, 3, 2, act="relu"), ConvBN(16, 16, 3, 2, act="relu"))  # /4
        self.s8 = STDC(16, 32, 2)
        self.s16 = STDC(32, 64, 2)
        self.sppm = SPPM(64, 32)
        self.fuse16 = UAFM(64, 32)
        self.fuse8 = UAFM(32, 32)
        self.head = nn.Sequential(ConvBN(32, 16, 3, act="relu"), nn.Conv2D(16, 4, 1))

    def forward(self, x):
        f8 = self.s8(self.stem(x))
        f16 = self.s16(f8)
        y = self.fuse8(f8, self.fuse16(f16, self.sppm(f16)))
        logits = F.interpolate(self.head(y), size=x.shape[2:], mode="bilinear", align_corners=False)
        return F.softmax(logits, axis=1), paddle.argmax(logits, axis=1)
