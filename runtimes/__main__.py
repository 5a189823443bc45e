"""``python -m wherry.runtimes``: the on-device runner (see runtimes/cli.py)."""
import sys

from .cli import main

sys.exit(main())
