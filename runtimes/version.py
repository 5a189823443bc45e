"""wherry's version. The one place it lives is the VERSION file beside this module: both
pyproject.toml files read it, and a board copy of wherry/runtimes without install metadata too."""
from pathlib import Path

__version__ = (Path(__file__).parent / "VERSION").read_text(encoding="utf-8").strip()
