"""Folders a killed run leaves behind, named so that the next run can prove them stale and remove them.

A folder made by a process that may be killed (kill -9, an out-of-memory kill, a lost ssh session) is named
``PREFIX-HOST-PID-XXXX`` (``owned_name``). A later run removes it only when that name proves its owner gone:
same host (a shared cache or network home may hold another machine's live folders) and a process id that no
longer runs (``owner_gone``). A folder whose owner is alive is never touched, and a folder of a reused
process id is merely kept too long. Where a lock already proves that nobody else works in a place (the
runner's ``--dir``, build-lite's cache under its build lock), the caller sweeps without this test.

Standard library only: this module is installed on boards with the rest of ``wherry.runtimes``.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Union

log = logging.getLogger(__name__)


def host() -> str:
    """This machine's name as it may appear in a file name."""
    return re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:32] or "host"


def alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OverflowError:
        return False
    return True


def owned_name(prefix: str) -> str:
    """The start of a folder name that records its owner: ``PREFIX-HOST-PID-``."""
    return f"{prefix}-{host()}-{os.getpid()}-"


def owned_tempdir(prefix: str, parent: Union[str, os.PathLike[str], None] = None) -> Path:
    """A new folder (in ``parent``, default the temporary directory) that ``sweep`` can prove stale later."""
    return Path(tempfile.mkdtemp(prefix=owned_name(prefix), dir=parent))


def owner_gone(owner_host: Optional[str], pid: int) -> bool:
    """True only when the owner is provably gone: this host, not this process, and no such process."""
    return owner_host == host() and pid != os.getpid() and not alive(pid)


def sweep(parent: Union[str, os.PathLike[str]], prefix: str, min_age: float = 0.0,
          prefix_regex: bool = False) -> List[Path]:
    """Remove the folders ``owned_tempdir(prefix, parent)`` made in processes that are gone now (and that were
    untouched for ``min_age`` seconds); the ones removed. ``prefix_regex``: ``prefix`` is a regular expression
    (e.g. any cache key). Never raises: a sweep is housekeeping."""
    pattern = re.compile((prefix if prefix_regex else re.escape(prefix))
                         + r"-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d{1,10})-\w+$")
    removed: List[Path] = []
    try:
        entries = list(Path(parent).iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if not match or not owner_gone(match.group("host"), int(match.group("pid"))):
            continue
        try:
            if min_age and time.time() - entry.lstat().st_mtime < min_age:
                continue
            remove(entry)
        except OSError:
            continue
        removed.append(entry)
        log.info("removed %s, left by an interrupted run (process %s is gone)", entry, match.group("pid"))
    return removed


def remove(path: Path) -> None:
    """Remove a file or a folder tree (a symlink itself, never what it points to)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
