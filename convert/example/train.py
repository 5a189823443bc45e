"""Train the digits CNN (runs in a child process: the export format is fixed at paddle import)."""
from __future__ import annotations

import numpy as np


def digits_data(seed: int = 0):
    """scikit-learn digits as NCHW float32 in [0, 1], split 75/25 with a fixed seed."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images / 16.0).astype("float32")[:, None, :, :]
    y = digits.target.astype("int64")
    order = np.random.default_rng(seed).permutation(len(x))
    cut = int(len(x) * 0.75)
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def train_and_save(out_prefix: str, epochs: int, seed: int) -> dict:
    import paddle
    from paddle import nn

    paddle.seed(seed)
    x_train, y_train, x_test, y_test = digits_data(seed)

    # conv-bn-relu6 blocks, a pool and a flatten+fc head: small, yet it uses the ops
    # current Paddle exports break for Lite (flatten XShape, relu6 threshold).
    model = nn.Sequential(
        nn.Conv2D(1, 16, 3, padding=1), nn.BatchNorm2D(16), nn.ReLU6(),
        nn.Conv2D(16, 32, 3, padding=1), nn.BatchNorm2D(32), nn.ReLU(),
        nn.MaxPool2D(2),
        nn.Conv2D(32, 32, 3, padding=1), nn.BatchNorm2D(32), nn.Hardswish(),
        nn.AdaptiveAvgPool2D(2),
        nn.Flatten(),
        nn.Linear(128, 10),
    )
    optimizer = paddle.optimizer.Adam(learning_rate=3e-3, parameters=model.parameters())
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        model.train()
        order = rng.permutation(len(x_train))
        for start in range(0, len(order), 64):
            idx = order[start:start + 64]
            loss = loss_fn(model(paddle.to_tensor(x_train[idx])), paddle.to_tensor(y_train[idx]))
            loss.backward()
            optimizer.step()
            optimizer.clear_grad()
    model.eval()
    logits = model(paddle.to_tensor(x_test)).numpy()
    accuracy = float((logits.argmax(1) == y_test).mean())
    paddle.jit.save(model, out_prefix,
                    input_spec=[paddle.static.InputSpec([None, 1, 8, 8], "float32", "x")])
    return {"accuracy": accuracy}
