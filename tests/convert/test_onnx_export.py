"""paddle2onnx's abort on ops it cannot convert becomes a hint naming them."""
from __future__ import annotations

from wherry.convert.onnx_export import explain_crash

# the end of paddle2onnx 1.3.1's log on the Senta-style model (tests/support/export_senta_model.py)
LOG = ("[Paddle2ONNX] Oops, there are some operators not supported yet, including gru,sequence_pool,sequence_unpad,\n"
       "[ERROR] Due to the unsupported operators, the conversion is aborted.\n")


def test_the_ops_paddle2onnx_cannot_convert_are_named():
    hint = explain_crash(LOG)
    assert hint is not None and "has no ONNX converter for gru, sequence_pool, sequence_unpad" in hint
    assert explain_crash("Segmentation fault in onnx optimizer") is None
