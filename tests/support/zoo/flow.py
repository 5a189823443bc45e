"""Python control flow on tensors, as paddle.jit.to_static turns it into if / while ops."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.common import ConvBN


class ControlFlow(nn.Layer):
    def __init__(self):
        super().__init__()
        self.stem = ConvBN(3, 8, 3, act="relu")
        self.a = ConvBN(8, 8, 3, act="hardswish")
        self.b = ConvBN(8, 8, 1, act="relu")
        self.step = nn.Conv2D(8, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        y = self.stem(x)
        if y.mean() > 0.5:          # data-dependent branch: pd_op.if
            y = self.a(y)
        else:
            y = self.b(y) * 0.5
        i = paddle.zeros([1], dtype="int64")
        while i < 3:                # a loop over a tensor counter: pd_op.while
            y = y + 0.5 * paddle.tanh(self.step(y))
            i = i + 1
        return F.softmax(self.fc(y.mean(axis=[2, 3])), axis=-1)
