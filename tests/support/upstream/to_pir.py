"""Paddle's own legacy -> PIR program translator (paddle.pir.translate_to_pir) on a legacy inference model.

    python tests/support/upstream/to_pir.py SRC_PREFIX DST_DIR

Writes DST_DIR/inference.json (inputs as pd_op.feed, as Paddle 3.3.1 writes them) beside a copy of the
parameters. The legacy program is read in legacy mode, hence a process of its own.
"""
import os
import shutil
import sys

os.environ["FLAGS_enable_pir_api"] = "0"

import paddle
from paddle.base import core


def main(src_prefix: str, dst: str) -> None:
    os.makedirs(dst, exist_ok=True)
    paddle.enable_static()
    program, _, _ = paddle.static.load_inference_model(src_prefix, paddle.static.Executor(paddle.CPUPlace()))
    core.serialize_pir_program(paddle.pir.translate_to_pir(program.desc), os.path.join(dst, "inference.json"))
    shutil.copyfile(src_prefix + ".pdiparams", os.path.join(dst, "inference.pdiparams"))


if __name__ == "__main__":
    main(*sys.argv[1:3])
