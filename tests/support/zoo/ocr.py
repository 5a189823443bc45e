"""PP-OCR-style text detection (DB) and recognition (SVTR neck, CTC head) over an LCNet backbone."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.common import ConvBN, DepthwiseSeparable, TransformerBlock


class OcrDet(nn.Layer):
    """LCNet stages -> DB-FPN (1x1 lateral, nearest upsampling, 3x3 smoothing) -> DB head (probability map)."""

    def __init__(self, w=8):
        super().__init__()
        self.stem = ConvBN(3, w, 3, 2)
        self.s1 = DepthwiseSeparable(w, w * 2, 2)             # /4
        self.s2 = DepthwiseSeparable(w * 2, w * 4, 2, se=True)  # /8
        self.s3 = DepthwiseSeparable(w * 4, w * 8, 2, k=5)    # /16
        c = w * 2
        self.lat = nn.LayerList([nn.Conv2D(ch, c, 1) for ch in (w * 2, w * 4, w * 8)])
        self.smooth = nn.LayerList([nn.Conv2D(c, c // 2, 3, padding=1) for _ in range(3)])
        self.head_conv = ConvBN(c // 2 * 3, c, 3, act="relu")
        self.up1 = nn.Conv2DTranspose(c, c, 2, stride=2)
        self.up1_bn = nn.BatchNorm2D(c)
        self.up2 = nn.Conv2DTranspose(c, 1, 2, stride=2)

    def forward(self, x):
        f1 = self.s1(self.stem(x))
        f2 = self.s2(f1)
        f3 = self.s3(f2)
        p3 = self.lat[2](f3)
        p2 = self.lat[1](f2) + F.interpolate(p3, scale_factor=2, mode="nearest")
        p1 = self.lat[0](f1) + F.interpolate(p2, scale_factor=2, mode="nearest")
        outs = [self.smooth[0](p1), F.interpolate(self.smooth[1](p2), scale_factor=2, mode="nearest"),
                F.interpolate(self.smooth[2](p3), scale_factor=4, mode="nearest")]
        y = self.head_conv(paddle.concat(outs, axis=1))
        y = F.relu(self.up1_bn(self.up1(y)))
        return F.sigmoid(self.up2(y))


class OcrRec(nn.Layer):
    """LCNet (height strided to 1) -> SVTR-style mixing blocks over the width sequence -> CTC softmax."""

    def __init__(self, w=8, classes=40):
        super().__init__()
        self.backbone = nn.Sequential(ConvBN(3, w, 3, 2), DepthwiseSeparable(w, w * 2, 1),
                                      DepthwiseSeparable(w * 2, w * 4, (2, 1)),
                                      DepthwiseSeparable(w * 4, w * 8, (2, 1), k=5, se=True))
        dim = w * 8
        self.neck_in = ConvBN(dim, dim, 1, act="swish")
        self.blocks = nn.LayerList([TransformerBlock(dim, 4, act="swish") for _ in range(2)])
        self.norm = nn.LayerNorm(dim)
        self.ctc = nn.Linear(dim, classes)

    def forward(self, x):
        y = self.backbone(x)                                   # [N, C, H/8, W/2]
        y = F.avg_pool2d(self.neck_in(y), kernel_size=[y.shape[2], 1])  # height -> 1
        seq = y.squeeze(2).transpose([0, 2, 1])               # [N, T, C]
        for block in self.blocks:
            seq = block(seq)
        return F.softmax(self.ctc(self.norm(seq)), axis=-1)
