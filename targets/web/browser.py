"""The system Chromium, driven headless: it opens one page and the page reports back over HTTP
(no driver protocol, no extra package)."""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional

from .ortweb import WebSetupError

log = logging.getLogger(__name__)

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find() -> str:
    """The browser executable: WHERRY_BROWSER, else the first Chromium-family browser on PATH."""
    chosen = os.environ.get("WHERRY_BROWSER")
    if chosen:
        if not (Path(chosen).is_file() or shutil.which(chosen)):
            raise WebSetupError(f"WHERRY_BROWSER={chosen} does not exist",
                                "point it at a Chromium or Chrome executable, or unset it")
        return shutil.which(chosen) or chosen
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    raise WebSetupError("the browser device needs Chromium or Chrome, and none is installed",
                        "install it (Debian: apt-get install chromium) or set WHERRY_BROWSER=/path/to/chrome")


def version(executable: str) -> str:
    """e.g. 'Chromium 156.0.7766.0 built on Debian ...' (first line of --version)."""
    try:
        proc = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise WebSetupError(f"cannot start {executable}: {exc}", "check the browser installation") from None
    return (proc.stdout.strip() or proc.stderr.strip()).splitlines()[0] if (proc.stdout or proc.stderr) else "unknown"


class Headless:
    """A headless browser on ``url`` with a private profile; ``close`` ends it and removes the profile."""

    def __init__(self, executable: str, url: str, webgpu: bool = False):
        self.profile = tempfile.mkdtemp(prefix="wherry-browser-")
        self.log = Path(self.profile) / "browser.log"
        args: List[str] = [executable, "--headless=new", "--no-first-run", "--no-default-browser-check",
                           "--disable-dev-shm-usage", f"--user-data-dir={self.profile}",
                           "--disable-background-timer-throttling", "--disable-renderer-backgrounding"]
        if os.geteuid() == 0:
            args.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
        if webgpu:
            # a headless Linux Chromium exposes WebGPU only behind this flag (here: SwiftShader's software adapter)
            args.append("--enable-unsafe-webgpu")
        # The page's URL holds the page server's session secret, and any local user can read a command
        # line (ps, /proc/PID/cmdline): the browser opens a file in its private profile (mode 0700)
        # that moves on to the URL, so the secret never appears in the process table.
        start = Path(self.profile) / "start.html"
        start.write_text(f"<!doctype html><meta charset=\"utf-8\"><script>location.replace({json.dumps(url)})"
                         f"</script>\n")
        args.append(start.as_uri())
        log.info("starting %s (it moves on to the page server)", " ".join(args))
        self._out = open(self.log, "w")
        self.proc: Optional[subprocess.Popen] = subprocess.Popen(args, stdout=self._out, stderr=subprocess.STDOUT,
                                                                 stdin=subprocess.DEVNULL, start_new_session=True)

    def exited(self) -> Optional[int]:
        return self.proc.poll() if self.proc else None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, 15)  # its own session: the renderer and GPU processes go too
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
            self.proc = None
        self._out.close()
        shutil.rmtree(self.profile, ignore_errors=True)
