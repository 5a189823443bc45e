"""Conversion progress: identifiers as timing keys, no "done" for a step that failed, a heartbeat
on long steps (plain log lines when stderr is not a terminal, as in CI)."""
from __future__ import annotations

import logging
import time

import pytest

from wherry.convert import progress


def test_step_keys_are_identifiers_and_a_failed_step_logs_no_done(caplog, monkeypatch):
    monkeypatch.setattr(progress, "HEARTBEAT_S", 0.2)
    timeline = progress.Timeline()
    with caplog.at_level(logging.INFO, logger="wherry"):
        with timeline.step("[rpi4] Paddle Lite opt (arm)"):
            time.sleep(0.5)
        with pytest.raises(RuntimeError):
            with timeline.step("golden run (Paddle Inference on the original model)"):
                raise RuntimeError("boom")
    timeline.book_tool("paddle lite opt", 1.0)
    steps = timeline.to_json()["steps_s"]
    assert list(steps) == ["rpi4_paddle_lite_opt_arm", "golden_run_paddle_inference_on_the_original_model"]
    assert list(timeline.to_json()["per_tool_s"]) == ["paddle_lite_opt"]
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("[rpi4] Paddle Lite opt (arm): still running") for m in messages), messages
    assert any(m.startswith("[rpi4] Paddle Lite opt (arm) done") for m in messages)
    assert not any(m.startswith("golden run") and "done" in m for m in messages), messages
