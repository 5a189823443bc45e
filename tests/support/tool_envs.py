"""The edge exporters' cached tool environments, for the `edge` tests (tests/convert/test_edge_targets.py and
tests/e2e/test_edge_matrix.py): made on first use, or the test skips with the reason."""
from __future__ import annotations

import pytest

from wherry.convert import tool_env


def tool_environment(module):
    """The python of ``module``'s tool environment, made if needed; skip with the reason where it cannot be."""
    try:
        return tool_env.ensure(module.ENV)
    except tool_env.ToolUnavailable as exc:
        pytest.skip(f"{module.ENV.label} cannot be installed here: {exc.message.splitlines()[0]}")
