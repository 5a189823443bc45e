"""Paddle's "no such op / no kernel" reports become PaddleOpMissing, naming the op and the Paddle version."""
from __future__ import annotations

import numpy as np
import pytest

from wherry import runtimes
from wherry.runtimes.errors import BundleError, PaddleOpMissing
from wherry.runtimes.isolate import error_from_json, error_to_json
from wherry.runtimes.paddle_errors import missing_op
from support.models import export_senta_model

# what Paddle 3.3.1 raised, verbatim in the part that matters
NOT_REGISTERED = ("(NotFound) Operator (sequence_unpad) is not registered.\n  [Hint: op_info_ptr should not be "
                  "null.] (at ../paddle/fluid/framework/op_info.h:152)")
NO_KERNEL = "(Unimplemented) There are no kernels which are registered in the sequence_reverse operator."
PHI = "(NotFound) The kernel `sequence_pad` is not registered."


@pytest.mark.parametrize("text, op", [(NOT_REGISTERED, "sequence_unpad"), (NO_KERNEL, "sequence_reverse"),
                                      (PHI, "sequence_pad"), ("(InvalidArgument) Input(X) is bad", None), ("", None)])
def test_missing_op_is_read_from_paddles_own_words(text, op):
    assert missing_op(text) == op


def test_the_error_says_one_line_with_op_version_and_what_to_do_and_survives_the_process_boundary():
    exc = PaddleOpMissing.missing("sequence_unpad", "3.3.1", "run it under Paddle 2.6.2")
    assert isinstance(exc, BundleError) and exc.hint is None and "\n" not in str(exc)
    assert str(exc) == ("Paddle 3.3.1 has no kernel for op sequence_unpad (a Paddle 1.x op Paddle 3 dropped): "
                        "run it under Paddle 2.6.2")
    back = error_from_json(error_to_json(exc))
    assert type(back) is PaddleOpMissing and (back.op, back.paddle_version, back.message) == \
        ("sequence_unpad", "3.3.1", exc.message)
    assert "Paddle 3 dropped" not in PaddleOpMissing.missing("x", "2.6.2", "y").message


@pytest.mark.slow   # exports the model with Paddle 2.6.2 (its environment is made once)
def test_a_real_paddle1_senta_model_is_refused_by_paddle3_as_a_missing_op_not_a_bad_save():
    """Senta's shape (sequence_unpad + bi-GRU + sequence_pool), saved by Paddle 2.6.2 as Paddle 1.x did."""
    feeds = {"words": np.ones((2, 8), np.int64), "seq_len": np.array([3, 5], np.int64)}
    with pytest.raises(PaddleOpMissing) as caught:
        with runtimes.open(str(export_senta_model()), backend="paddle", isolate=True) as session:
            session.run(feeds)
    import paddle
    assert (caught.value.op, caught.value.paddle_version) == ("sequence_unpad", paddle.__version__)
    assert "saved for inference" not in str(caught.value) and "paddlepaddle==2.6.2" in caught.value.message
