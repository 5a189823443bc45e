"""The emulated aarch64 board's check of a target's ARM .nb files, run beside the host work.

Where Paddle Lite's ARM runtime was built on this host (`wherry targets build-lite`), `wherry convert`
runs each ARM .nb on the emulated aarch64 board (qemu user mode) against the golden outputs; its
verdict joins the artifact's notes. Emulation makes it the longest step of a conversion (seconds to a
minute per model), so it starts as soon as the target's .nb files exist, on a small bundle of its own
(the .nb files, the golden data, a manifest naming only them), and runs as a separate process while
wherry exports ONNX and checks the host artifacts: the board's emulated core and the host work share
the machine's cores instead of taking turns.

The board's process is already apart from wherry, so a native crash there cannot take wherry down:
the .nb files run in it without an isolated child (about 2 s less under qemu). Only if that process
dies is the check repeated with isolation, which names the artifact that crashed.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, List, Optional

from wherry.runtimes.bundle import Artifact
from wherry.runtimes import time_limit
from wherry.runtimes.errors import WherryError

log = logging.getLogger(__name__)

DEVICE = "emulated-aarch64"   # the board, as `--device` names it (targets.devices.EMULATED)


def runtime_built(profile) -> bool:
    """Whether Paddle Lite's ARM runtime for this target was built on this host: then its .nb artifacts
    are run on the emulated board instead of an x86 twin."""
    from wherry.targets import lite

    return profile.arch == "aarch64" and lite.find("aarch64") is not None


def checkable(artifacts) -> List[Artifact]:
    # the ARM runtime built here is CPU-only: OpenCL .nb files stay unverified
    return [a for a in artifacts if a.format == "nb" and a.arch == "arm" and "opencl" not in (a.places or "")]


class BoardCheck:
    """One target's board check, running. ``finish()`` waits for it and puts each verdict in the
    artifact's notes; ``cancel()`` stops it (the conversion failed or was interrupted)."""

    def __init__(self, nbs: List[Artifact], folder: Path, label: str, timeline):
        from wherry.targets.devices import EmulatedAarch64

        self.nbs, self.folder, self.label, self.timeline = nbs, folder, label, timeline
        self.device = EmulatedAarch64()
        # the default limit, not one derived from the host's golden run: qemu runs many times slower
        self.argv = ["check", str(folder), "--json", "--timeout", f"{time_limit.DEFAULT_S:g}"] + \
            [w for a in nbs for w in ("--artifact", a.file)]
        # files, not pipes: nobody reads the board's output until it ends, and a full pipe would stall it
        self._out, self._err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
        self._start = timeline.begin(label)
        try:
            self.proc: Optional[subprocess.Popen] = self.device.start(self.argv + ["--no-isolate"], self._out,
                                                                      self._err)
        except BaseException:
            self._out.close()
            self._err.close()
            raise

    def finish(self) -> dict:
        """The board's result per artifact file (empty when the board could not run)."""
        try:
            assert self.proc is not None, "finish() runs once, on a check not cancelled"
            code = self.proc.wait()
            self._out.seek(0)
            stdout = self._out.read()
            if code not in (0, 1):
                log.info("the emulated board's check ended with exit code %s; repeating it isolated", code)
                stdout = self.device.run(self.argv, [self.folder]).stdout
            board = {r["file"]: r for r in json.loads(stdout)["artifacts"]}
        except (WherryError, ValueError, KeyError) as exc:
            _unverified(self.nbs, exc.message if isinstance(exc, WherryError) else str(exc))
            return {}
        finally:
            self._record()
        for art in self.nbs:
            r = board.get(art.file)
            if r is not None:
                art.notes.extend(_notes(r))
        return board

    def cancel(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._record(done=False)

    def _record(self, done: bool = True) -> None:
        if self.proc is None:
            return
        self.proc = None
        self.timeline.end(self.label, self._start, done)
        for fh in (self._out, self._err):
            fh.close()


def _unverified(nbs: List[Artifact], why: str) -> None:
    for art in nbs:
        art.notes.append(f"emulated aarch64 board could not check it: {why.splitlines()[0][:200]}")


def _notes(result: dict) -> List[str]:
    return result_notes(result, "emulated aarch64 board (qemu, Paddle Lite ARM runtime)")


def result_notes(result: dict, where: str) -> List[str]:
    """An artifact's notes from another device's check of it (the runner's JSON): its verdict and figures."""
    outs = [o for o in result.get("outputs", []) if o.get("max_abs") is not None]
    figures = (f" (max abs {max(float(o['max_abs']) for o in outs):.2e}, cosine "
               f"{min(float(o['cosine']) for o in outs):.6f})") if outs else ""
    verdict = {"passed": "pass", "failed": "FAIL"}.get(result["status"], result["status"])
    why = f": {result['reason'].splitlines()[0][:200]}" if result["status"] != "passed" and result.get("reason") else ""
    return [f"{where} vs golden: {verdict}{figures}{why}",
            *result.get("notes", [])]


def start(profile, artifacts, stage: Path, work: Path, timeline,
          write_bundle: Callable[[Path, List[Artifact]], None]) -> Optional[BoardCheck]:
    """Start the board check of ``artifacts``' ARM .nb files, or return None when there is none to run
    or no ARM runtime here. ``write_bundle(folder, nbs)`` writes the golden data and a manifest naming
    ``nbs`` into ``folder`` (the converter's own manifest writer)."""
    nbs = checkable(artifacts)
    if not nbs or not runtime_built(profile):
        return None
    folder = work / f"board-{profile.name}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for art in nbs:
        try:
            os.link(stage / art.file, folder / art.file)   # same file system: no copy of a large .nb
        except OSError:
            shutil.copyfile(stage / art.file, folder / art.file)
    write_bundle(folder, nbs)
    try:
        return BoardCheck(nbs, folder, f"[{profile.name}] checking the ARM .nb artifacts on the emulated aarch64 "
                                       "board", timeline)
    except WherryError as exc:   # the board cannot be set up here: the .nb files stay unverified, said why
        _unverified(nbs, exc.message)
        return None
