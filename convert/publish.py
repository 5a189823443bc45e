"""Put a staged bundle at its final path in one step: a reader (or a kill -9) sees the old bundle or
the new one there, never neither.

Linux swaps the two directories with ``renameat2(RENAME_EXCHANGE)`` (kernel 3.15+, supported by
ext4, xfs, btrfs, tmpfs, overlayfs): one system call, so the path always names a whole bundle; the
old one, now at the staging name, is removed afterwards. Where the kernel or the file system
cannot exchange (another OS, NFS, FUSE), two renames are the fallback: old → hidden sibling,
stage → final, and a failure of the second rename renames the old bundle back. Only a kill -9
between those two renames can leave the path empty there; the next publish at that path puts the
old bundle back first (``_recover``).

Staging folders are named ``.NAME.tmp-HOST-PID-XXXX`` (``stage_dir``), so a publish can sweep the ones a
killed run left beside its bundle (``sweep``): same host, a process that is gone, untouched for
``STALE_S`` seconds. A conversion's scratch folder in ``-o`` (``work_dir``, ``.wherry-work-HOST-PID-XXXX``)
is swept the same way by the next conversion there. A live run's folders are never touched.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional

from wherry.runtimes.errors import WherryError
from wherry.runtimes.leftovers import alive as _alive
from wherry.runtimes.leftovers import host as _host
from wherry.runtimes.leftovers import owned_name
from wherry.runtimes.leftovers import sweep as _sweep_owned

log = logging.getLogger(__name__)

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
# errors that mean "this kernel or file system cannot exchange", not "this exchange failed"
_UNSUPPORTED = {errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM}

class OutputError(WherryError):
    """The output location cannot be written."""


# Test-only fault injection: called with the name of each step just before it runs ("exchange",
# "remove-old", "move-old", "move-new"), so a test can kill the process or raise an I/O error
# between steps. Always None in normal use; publishing is not a hot path.
_before_step: Optional[Callable[[str], None]] = None


def _step(name: str) -> None:
    if _before_step is not None:
        _before_step(name)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths; False when this kernel or file system cannot (the caller falls back)."""
    libc = _libc()
    if libc is None:
        return False
    if libc.renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    import ctypes
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(b))


_LIBC: List[Optional[Any]] = []  # the libc with renameat2, or None: looked up once


def _libc():
    if not _LIBC:
        lib = None
        try:
            import ctypes
            lib = ctypes.CDLL(None, use_errno=True)
            lib.renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            lib.renameat2.restype = ctypes.c_int
        except (OSError, AttributeError):  # not Linux, or a glibc older than 2.28
            lib = None
        _LIBC.append(lib)
    return _LIBC[0]


STALE_S = 600.0   # a leftover of a dead run younger than this is kept (its owner may be on another host)


def stage_dir(final: Path) -> Path:
    """A new hidden staging folder beside ``final``, named so that ``sweep`` can tell when its run is gone."""
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-{_host()}-{os.getpid()}-", dir=final.parent))


WORK_PREFIX = ".wherry-work"


@contextlib.contextmanager
def work_dir(out_dir: Path) -> Iterator[Path]:
    """A conversion's scratch folder in ``out_dir`` (removed when the conversion ends), named for its owner so
    that the next conversion there removes it when a kill -9 left it; such leftovers are swept first."""
    _sweep_owned(out_dir, WORK_PREFIX, min_age=STALE_S)
    with tempfile.TemporaryDirectory(prefix=owned_name(WORK_PREFIX), dir=out_dir) as path:
        yield Path(path)


def sweep(final: Path) -> None:
    """Remove the staging and replaced-bundle folders that killed runs left beside ``final``."""
    final = Path(final)
    pattern = re.compile(re.escape(f".{final.name}.") + r"(?:tmp-(?P<host>[A-Za-z0-9_]+)-(?P<pid>\d+)-\w+|"
                         r"old-(?P<oldpid>\d+))$")
    try:
        entries = list(final.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        match = pattern.match(entry.name)
        if not match:
            continue
        pid = int(match.group("pid") or match.group("oldpid"))
        if match.group("host") not in (None, _host()) or pid == os.getpid() or _alive(pid):
            continue
        try:
            if time.time() - entry.lstat().st_mtime < STALE_S:
                continue
            if match.group("oldpid") and not (final.exists() or final.is_symlink()):
                continue   # the only copy of a bundle: _recover puts it back
            shutil.rmtree(entry)
            log.info("removed %s, left by an interrupted run", entry)
        except OSError:
            continue


def _old_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.old-{os.getpid()}")


def _recover(final: Path) -> None:
    """A fallback publish killed between its two renames left the old bundle hidden beside ``final``
    and nothing at ``final``: put the old one back before anything else happens there."""
    if final.exists() or final.is_symlink():
        return
    # the most recently renamed first (a rename sets ctime): an older hidden copy, left when removing a
    # replaced bundle failed, must not come back instead of the one the interrupted publish displaced
    for hidden in sorted(final.parent.glob(f".{final.name}.old-*"), key=_renamed_at, reverse=True):
        pid = hidden.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue  # another publish is between its steps right now
        try:
            os.rename(hidden, final)
            log.warning("restored %s from an interrupted replacement", final)
            return
        except OSError:
            continue


def _renamed_at(path: Path) -> float:
    try:
        return path.lstat().st_ctime
    except OSError:
        return 0.0


def replace_bundle(stage: Path, final: Path) -> None:
    """Rename the staged bundle ``stage`` to ``final``, replacing an existing bundle there as a whole.

    On failure the old bundle is still at ``final`` and ``OutputError`` says why; the stage is left
    for its owner to discard."""
    stage, final = Path(stage), Path(final)
    _recover(final)
    sweep(final)
    try:
        if not (final.exists() or final.is_symlink()):
            _step("move-new")
            os.rename(stage, final)
            return
        _step("exchange")
        if _exchange(stage, final):
            # ``final`` is the new bundle now; ``stage`` names the old one
            _remove_old(stage)
            return
        _replace_by_two_renames(stage, final)
    except OSError as exc:
        raise OutputError(f"could not put the bundle at {final}: {exc.strerror or exc}",
                          "the previous bundle (if any) is unchanged; free space or fix permissions and "
                          "convert again") from None


def _replace_by_two_renames(stage: Path, final: Path) -> None:
    old = _old_name(final)
    _step("move-old")
    os.rename(final, old)
    try:
        _step("move-new")
        os.rename(stage, final)
    except BaseException:
        os.rename(old, final)  # roll back: the old bundle goes back where it was
        raise
    _remove_old(old)


def _remove_old(old: Path) -> None:
    """The new bundle is in place; failing to delete the old one leaves a hidden folder, never an error."""
    try:
        _step("remove-old")
        shutil.rmtree(old)
    except OSError as exc:
        log.warning("the replaced bundle %s could not be removed: %s", old, exc.strerror or exc)
