"""Export a Paddle 1.x-style sequence tagger as a Paddle 1.x directory (__model__ + one file per parameter).

    python tests/support/export_sequence_model.py OUT_DIR

The shape of Paddle 1.x lexical-analysis models: int64 word ids [-1, 1] with one LoD level (the
sequence lengths of a batch), an embedding, a GRU over each sequence and CRF (Viterbi) decoding of
the best tag path. Built with the legacy static API and its LoD ops (lookup_table, gru, crf_decoding),
which Paddle 3.3.1 still runs; weights are seeded.
"""
import os
import sys

os.environ["FLAGS_enable_pir_api"] = "0"

import numpy as np
import paddle
from paddle1_program import op_maker, param_maker, save_paddle1  # after the flag: it imports paddle

VOCAB, EMBED, HIDDEN, TAGS = 60, 16, 16, 7


def build():
    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    rng = np.random.default_rng(0)

    param = param_maker(rng)

    with paddle.static.program_guard(main, startup):
        words = paddle.static.data("words", [-1, 1], "int64", lod_level=1)
        op = op_maker("tagger")

        emb = op("lookup_table", {"Ids": words, "W": param("emb", [VOCAB, EMBED], 1.0)}, ["Out"],
                 {"padding_idx": -1})["Out"]
        gates = op("mul", {"X": emb, "Y": param("gru_in_w", [EMBED, 3 * HIDDEN], 0.3)}, ["Out"])["Out"]
        hidden = op("gru", {"Input": gates, "Weight": param("gru_w", [HIDDEN, 3 * HIDDEN], 0.3),
                            "Bias": param("gru_b", [1, 3 * HIDDEN], 0.1)},
                    ["Hidden", "BatchGate", "BatchResetHiddenPrev", "BatchHidden"],
                    {"activation": "tanh", "gate_activation": "sigmoid", "is_reverse": False,
                     "origin_mode": False, "is_test": True})["Hidden"]
        emission = op("mul", {"X": hidden, "Y": param("emit_w", [HIDDEN, TAGS], 0.5)}, ["Out"])["Out"]
        path = op("crf_decoding", {"Emission": emission, "Transition": param("crf_t", [TAGS + 2, TAGS], 0.5)},
                  ["ViterbiPath"], dtype="int64")["ViterbiPath"]
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    return main, words, [emission, path], exe


if __name__ == "__main__":
    main, words, fetches, exe = build()
    save_paddle1(sys.argv[1], main, [words], fetches, exe)
