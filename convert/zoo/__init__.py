"""``wherry zoo``: convert and verify a whole model zoo (models x targets x precisions) in one command.

    zoo file (TOML) -> cells (model x target) -> cache lookup -> tasks (one model, its uncached targets)
    -> local worker processes (-j, memory bound) or Ray tasks -> bundles in -o, cache entries
    -> one matrix report (terminal table, JSON wherry.zoo.v1, Markdown)

Not to be confused with tests/support/zoo/ (the test suite's set of model families, ``pytest -m zoo``).
"""
from .spec import ZooError, load_zoo  # noqa: F401
