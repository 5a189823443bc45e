"""Building blocks shared by the zoo families."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F


class ConvBN(nn.Layer):
    def __init__(self, cin, cout, k=3, stride=1, groups=1, act="hardswish"):
        super().__init__()
        self.conv = nn.Conv2D(cin, cout, k, stride=stride, padding=(k - 1) // 2, groups=groups, bias_attr=False)
        self.bn = nn.BatchNorm2D(cout)
        self.act = act

    def forward(self, x):
        x = self.bn(self.conv(x))
        if self.act == "hardswish":
            return F.hardswish(x)
        if self.act == "relu":
            return F.relu(x)
        if self.act == "swish":
            return F.swish(x)
        if self.act == "relu6":
            return F.relu6(x)
        return x


class SE(nn.Layer):
    def __init__(self, c, r=4):
        super().__init__()
        self.fc1 = nn.Conv2D(c, c // r, 1)
        self.fc2 = nn.Conv2D(c // r, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * F.hardsigmoid(self.fc2(F.relu(self.fc1(s))))


class DepthwiseSeparable(nn.Layer):
    """The PP-LCNet block: depthwise 3x3 (or 5x5), optional SE, pointwise 1x1, hardswish."""

    def __init__(self, cin, cout, stride=1, k=3, se=False):
        super().__init__()
        self.dw = ConvBN(cin, cin, k, stride, groups=cin)
        self.se = SE(cin) if se else None
        self.pw = ConvBN(cin, cout, 1)

    def forward(self, x):
        x = self.dw(x)
        if self.se is not None:
            x = self.se(x)
        return self.pw(x)


def lcnet_backbone(width=8):
    return nn.Sequential(ConvBN(3, width, 3, 2),
                         DepthwiseSeparable(width, width * 2, 1),
                         DepthwiseSeparable(width * 2, width * 4, 2),
                         DepthwiseSeparable(width * 4, width * 4, 1, k=5),
                         DepthwiseSeparable(width * 4, width * 8, 2, k=5, se=True))


class Attention(nn.Layer):
    """Multi-head self-attention with an optional additive mask."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        n, t, c = x.shape
        qkv = self.qkv(x).reshape([n, t, 3, self.heads, c // self.heads]).transpose([2, 0, 3, 1, 4])
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = paddle.matmul(q, k, transpose_y=True) * self.scale
        if mask is not None:
            att = att + mask
        att = F.softmax(att, axis=-1)
        out = paddle.matmul(att, v).transpose([0, 2, 1, 3]).reshape([n, t, c])
        return self.proj(out)


class TransformerBlock(nn.Layer):
    def __init__(self, dim, heads, mlp=2, act="gelu"):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.fc1, self.fc2 = nn.Linear(dim, dim * mlp), nn.Linear(dim * mlp, dim)
        self.act = act

    def forward(self, x, mask=None):
        x = x + self.attn(self.norm1(x), mask)
        h = self.fc1(self.norm2(x))
        h = F.gelu(h) if self.act == "gelu" else F.swish(h)
        return x + self.fc2(h)
