"""Classifiers: PP-LCNet (depthwise-separable, SE, hardswish) and PP-HGNet-style (HG blocks with ESE)."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.common import ConvBN, lcnet_backbone


class LCNet(nn.Layer):
    def __init__(self, classes=10):
        super().__init__()
        self.backbone = lcnet_backbone(8)
        self.last = nn.Conv2D(64, 128, 1)
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        y = F.adaptive_avg_pool2d(self.backbone(x), 1)
        y = F.hardswish(self.last(y))
        y = self.dropout(paddle.flatten(y, 1))
        return F.softmax(self.fc(y), axis=-1)


class ESE(nn.Layer):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2D(c, c, 1)

    def forward(self, x):
        return x * F.sigmoid(self.conv(x.mean(axis=[2, 3], keepdim=True)))


class HGBlock(nn.Layer):
    """A chain of 3x3 convs whose outputs are all concatenated, squeezed by 1x1, weighted by ESE."""

    def __init__(self, cin, mid, cout, layers=3, residual=False):
        super().__init__()
        self.convs = nn.LayerList([ConvBN(cin if i == 0 else mid, mid, 3, act="relu") for i in range(layers)])
        self.agg = ConvBN(cin + mid * layers, cout, 1, act="relu")
        self.ese = ESE(cout)
        self.residual = residual

    def forward(self, x):
        outs, y = [x], x
        for conv in self.convs:
            y = conv(y)
            outs.append(y)
        y = self.ese(self.agg(paddle.concat(outs, axis=1)))
        return y + x if self.residual else y


class HGNet(nn.Layer):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(ConvBN(3, 16, 3, 2, act="relu"), ConvBN(16, 16, 3, 1, act="relu"))
        self.pool = nn.MaxPool2D(3, 2, 1)
        self.stage1 = HGBlock(16, 16, 32)
        self.down = ConvBN(32, 32, 3, 2, groups=32, act=None)
        self.stage2 = HGBlock(32, 24, 32, residual=True)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        y = self.stage2(self.down(self.stage1(self.pool(self.stem(x)))))
        y = F.adaptive_avg_pool2d(y, 1).flatten(1)
        return F.softmax(self.fc(y), axis=-1)
