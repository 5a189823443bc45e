"""Export a Senta-style sentiment classifier as a Paddle 1.x directory (__model__ + one file per parameter).

    <python with paddlepaddle 2.6.2> tests/support/export_senta_model.py OUT_DIR

The shape of Senta (Baidu's Paddle 1.x sentiment models, as their PyPI/PaddleHub releases ship them):
padded int64 word ids [-1, 8] and their lengths [-1], ``sequence_unpad`` into a LoD tensor, an embedding,
a bidirectional GRU, ``sequence_pool`` (max) over each sequence, and a softmax over two classes. Paddle
3.3.1 has no kernel for ``sequence_unpad`` (a Paddle 1.x op Paddle 3 dropped), so this must run under
Paddle 2.6.2; weights are seeded.
"""
import sys

import numpy as np
import paddle
from paddle1_program import op_maker, param_maker, save_paddle1

VOCAB, EMBED, HIDDEN, CLASSES, MAX_LEN = 50, 8, 8, 2, 8


def build():
    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    rng = np.random.default_rng(0)

    param = param_maker(rng)

    with paddle.static.program_guard(main, startup):
        words = paddle.static.data("words", [-1, MAX_LEN], "int64")
        seq_len = paddle.static.data("seq_len", [-1], "int64")
        op = op_maker("senta")

        ids = op("sequence_unpad", {"X": words, "Length": seq_len}, ["Out"], dtype="int64")["Out"]
        emb = op("lookup_table", {"Ids": ids, "W": param("emb", [VOCAB, EMBED], 1.0)}, ["Out"],
                 {"padding_idx": -1})["Out"]
        pooled = []
        for direction, reverse in (("fw", False), ("bw", True)):
            gates = op("mul", {"X": emb, "Y": param(f"gru_{direction}_in", [EMBED, 3 * HIDDEN], 0.3)}, ["Out"])["Out"]
            hidden = op("gru", {"Input": gates, "Weight": param(f"gru_{direction}_w", [HIDDEN, 3 * HIDDEN], 0.3),
                                "Bias": param(f"gru_{direction}_b", [1, 3 * HIDDEN], 0.1)},
                        ["Hidden", "BatchGate", "BatchResetHiddenPrev", "BatchHidden"],
                        {"activation": "tanh", "gate_activation": "sigmoid", "is_reverse": reverse,
                         "origin_mode": False, "is_test": True})["Hidden"]
            pooled.append(op("sequence_pool", {"X": hidden}, ["Out", "MaxIndex"],
                             {"pooltype": "MAX", "is_test": True, "pad_value": 0.0})["Out"])
        both = op("concat", {"X": pooled}, ["Out"], {"axis": 1})["Out"]
        logits = op("mul", {"X": both, "Y": param("fc_w", [2 * HIDDEN, CLASSES], 0.5)}, ["Out"])["Out"]
        logits = op("elementwise_add", {"X": logits, "Y": param("fc_b", [CLASSES], 0.1)}, ["Out"], {"axis": 1})["Out"]
        probs = op("softmax", {"X": logits}, ["Out"], {"axis": -1})["Out"]
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    return main, [words, seq_len], [probs], exe


if __name__ == "__main__":
    main, feeds, fetches, exe = build()
    save_paddle1(sys.argv[1], main, feeds, fetches, exe)
