"""Paddle 1.x models with ops Paddle 3 dropped (issue #23): a Senta-style sentiment model."""
from __future__ import annotations

from support.models import export_senta_model


def test_convert_names_the_missing_op_in_one_line_without_a_traceback(wherry, tmp_path):
    proc = wherry("convert", export_senta_model(), "-o", tmp_path, check=2)
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("wherry: error")]
    assert len(errors) == 1 and "Traceback" not in proc.stderr and "hint:" not in proc.stderr, proc.stderr
    assert "has no kernel for op sequence_unpad (a Paddle 1.x op Paddle 3 dropped)" in errors[0]
    assert "saved for inference" not in proc.stderr
