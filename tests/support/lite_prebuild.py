"""Paddle Lite's ARM runtime for the test run: found, or built once in the background.

Building Lite's library takes about 20 minutes on 2 cores. When the collected tests need the runtime
(`arm_runtime`, `lite_runtime_settled`) and it is not built yet, the build starts as soon as collection
ends, at a lower priority (nice), beside the tests that do not need it; a test that needs it waits for
it. The build's log goes to $WHERRY_CACHE/paddle-lite/prebuild.log (it is also the skip reason's pointer).
Where it cannot be built (no source archive and no built library, or missing tools that this user may
not install), nothing starts and the tests skip with the exact missing piece.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Optional

from wherry.targets import lite

REPO = Path(__file__).resolve().parents[2]
FIXTURES_NEEDING_IT = {"arm_runtime", "lite_runtime_settled"}

_build: Optional[subprocess.Popen] = None


def vendor_archive() -> Optional[str]:
    """Paddle Lite's source archive: $WHERRY_LITE_SOURCE, or ../shared/vendor/paddle-lite-*.tar.gz beside the
    repository (or beside its main worktree, when REPO is a linked one)."""
    if os.environ.get("WHERRY_LITE_SOURCE"):
        return os.environ["WHERRY_LITE_SOURCE"]
    roots = [REPO]
    common = subprocess.run(["git", "rev-parse", "--path-format=absolute", "--git-common-dir"], cwd=REPO,
                            capture_output=True, text=True).stdout.strip()
    if common:
        roots.append(Path(common).parent)
    for root in roots:
        found = sorted((root.parent / "shared" / "vendor").glob("paddle-lite-*.tar.gz"))
        if found:
            return str(found[-1])
    return None


def why_not_buildable() -> List[str]:
    """Why the runtime cannot be had here (empty when it is built or can be built): each missing piece."""
    if lite.find("aarch64"):
        return []
    need_lib = not lite.library_built("aarch64")
    why = []
    if need_lib and vendor_archive() is None:
        why.append("no Paddle Lite ARM library built (`wherry targets build-lite --arch aarch64`) and no Paddle "
                   "Lite source archive ($WHERRY_LITE_SOURCE or ../shared/vendor/paddle-lite-*.tar.gz; the "
                   "tests do not clone it from GitHub)")
    if not lite.installable_prerequisites("aarch64", need_lib):
        why += lite.missing_prerequisites("aarch64", need_lib)
    return why


def log_path() -> Path:
    return lite.cache_root() / "paddle-lite" / "prebuild.log"


def start(items) -> None:
    """After collection: start the build in the background when a collected test needs the runtime."""
    global _build
    if _build is not None or not any(FIXTURES_NEEDING_IT & set(getattr(i, "fixturenames", ())) for i in items):
        return
    if lite.find("aarch64") or why_not_buildable():
        return
    log = log_path()
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"\nbuilding Paddle Lite's aarch64 runtime in the background (about 20 minutes on 2 cores the first "
          f"time, cached in {lite.cache_root()}); log: {log}", file=sys.__stderr__, flush=True)
    with open(log, "w") as out:
        _build = subprocess.Popen(
            [sys.executable, "-m", "wherry.convert.cli", "targets", "build-lite", "--arch", "aarch64",
             *(["--source", vendor_archive()] if not lite.library_built("aarch64") else [])],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True,
            preexec_fn=lambda: os.nice(10))  # the tests beside it keep their speed


def wait() -> None:
    """Block until a background build (if one was started) has finished; its outcome is read from the cache."""
    if _build is None or _build.poll() is not None:
        return
    print(f"\nwaiting for the background Paddle Lite build (log: {log_path()})", file=sys.__stderr__, flush=True)
    started = time.monotonic()
    _build.wait()
    print(f"background Paddle Lite build finished (exit {_build.returncode}) after waiting "
          f"{time.monotonic() - started:.0f} s", file=sys.__stderr__, flush=True)


def stop() -> None:
    """At the end of the session: a build still running (the needing tests were deselected or failed early)
    is stopped; its lock and partial directories are cleaned by the next build."""
    if _build is not None and _build.poll() is None:
        os.killpg(_build.pid, signal.SIGTERM)  # its own session: cmake and the compilers go with it
        try:
            _build.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(_build.pid, signal.SIGKILL)
