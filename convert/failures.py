"""What became of each requested artifact that was not built: one exporter's failure is recorded, the
others still ship (see docs/DESIGN.md, "Artifact fates")."""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import List, Optional, Sequence

from wherry.runtimes.bundle import FAILED_TO_BUILD, NotBuilt
from wherry.runtimes.errors import WherryError

log = logging.getLogger(__name__)


class Failures:
    """The requested artifacts of one bundle that could not be built, with the error of each.

    Exporters are independent: one failing (Lite for one place set, paddle2onnx, a quantized variant)
    is recorded here and the others still ship; the manifest and report list every record.
    """

    def __init__(self, disks: Sequence[Path] = ()):
        """``disks``: folders the tools write into; a failure while one of them is full is that, not the tool's."""
        self.records: List[NotBuilt] = []
        self._errors: List[WherryError] = []
        self._disks = list(disks)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def failed(self) -> List[NotBuilt]:
        """Records of tools that failed (not those of artifact formats that cannot express the model)."""
        return [r for r in self.records if r.status == FAILED_TO_BUILD]

    def add(self, record: NotBuilt, error: Optional[WherryError] = None) -> None:
        full = full_disk(self._disks, record.reason)
        if full is not None:   # a tool that could not write (Lite's opt aborts in fwrite) did not fail on the model
            raise full
        log.warning("%s %s (%s): %s", record.file, record.status, record.tool, record.reason)
        self.records.append(record)
        self._errors.append(error)

    def attempt(self, build, *, file: str, fmt: str, precision: str, arch: str, tool: str,
                places: Optional[str] = None, leftover: Optional[Path] = None):
        """Run ``build()``; a WherryError from it becomes a NotBuilt record and None is returned.
        ``leftover`` is the file the build writes: removed on failure so no orphan ships in the bundle."""
        try:
            return build()
        except WherryError as exc:
            if leftover is not None and leftover.exists():
                leftover.unlink()
            self.add(not_built(exc, file=file, fmt=fmt, precision=precision, arch=arch, tool=tool, places=places),
                     exc)
            return None

    def drop_precision(self, precision: str) -> None:
        kept = [(r, e) for r, e in zip(self.records, self._errors) if r.precision != precision]
        self.records, self._errors = [r for r, _ in kept], [e for _, e in kept]

    def raise_if_nothing_built(self, artifacts) -> None:
        """A bundle without a single artifact helps nobody: the first failure is the conversion's error."""
        if not artifacts and self.records:
            error = next((e for e in self._errors if e is not None), None)
            if error is not None:
                raise error
            first = self.records[0]
            raise WherryError(f"no artifact could be built: {first.file}: {first.reason}", first.hint or None)


LOW_SPACE = 1 << 20   # less free space than this where a tool writes: a failure there is the disk's
_NO_SPACE = re.compile(r"No space left on device|Errno 28\b|ENOSPC|Disk quota exceeded")


def full_disk(folders: Sequence[Path], reason: str = ""):
    """An OutputError naming the full disk when one of ``folders`` has (almost) no space left, or a tool's
    failure ``reason`` says so; else None."""
    from wherry.convert.publish import OutputError

    for folder in folders:
        try:
            stat = os.statvfs(folder)
        except OSError:
            continue
        if stat.f_bavail * stat.f_frsize < LOW_SPACE or _NO_SPACE.search(reason or ""):
            return OutputError(f"no space left on the disk holding {folder} "
                               f"({stat.f_bavail * stat.f_frsize >> 10} KiB free)",
                               "free space there or convert into another folder (-o DIR); nothing was written "
                               "and the previous bundle, if any, is unchanged")
    return None


def not_built(exc: WherryError, *, file, fmt, precision, arch, tool, places=None) -> NotBuilt:
    return NotBuilt(file=file, format=fmt, precision=precision, arch=arch, places=places,
                    tool=getattr(exc, "tool", None) or tool, reason=one_line(exc.message), hint=exc.hint or "",
                    log=exc.message)


_LOG_PREFIX = re.compile(r"^\[\w+ [^\]]*\]\s*")


def one_line(message: str) -> str:
    """A tool error in one line: its headline plus the last line of its log (where native tools say why)."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    if not lines:
        return ""
    head = lines[0].replace("; last log lines:", "").rstrip(":; ")
    fatal = [ln for ln in lines[1:] if ln.startswith("[F ") or "Check failed" in ln or "Error" in ln]
    return head + (f": {_LOG_PREFIX.sub('', fatal[-1])}" if fatal else "")
