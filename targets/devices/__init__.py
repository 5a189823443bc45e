"""Device connections: where `python -m wherry.runtimes` runs for `wherry check/run/bench/info --device ...`.

Every connection runs the same on-device runner with the same arguments and
hands back its output and exit code, so the parity report is the same
whatever the connection:

* ``local``             - this machine
* ``emulated-aarch64``  - a Debian arm64 sysroot under qemu user-mode emulation (emulated_board.sh)
* ``http://host:port``  - a device running `python -m wherry.runtimes serve` (runtimes/serve.py)
* ``ssh://user@host[:port][?python=/path/to/python3]`` - a real board: the bundle and the runtimes
  package are copied over and run with the board's python3 (or the given one, e.g. a venv's)
* ``browser[:wasm|:webgpu]`` - onnxruntime-web in headless Chromium (browser.py; ONNX artifacts only)
"""
from __future__ import annotations

import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence
from urllib.parse import urlparse

from wherry import runtimes
from wherry.runtimes.device import EMULATION_ENV
from wherry.runtimes.errors import WherryError

log = logging.getLogger(__name__)

RUNTIMES_PACKAGE = Path(runtimes.__file__).resolve().parent
EMULATED = "emulated-aarch64"


class DeviceError(WherryError):
    """A device cannot be reached or cannot run the runner."""


class BoardUnavailable(DeviceError):
    """The board cannot be reached at all (down, unplugged, runner not started): not a failed check.

    Its own exit code lets a job tell a board that is down from a board that fails."""

    exit_code = 3


@dataclass
class RunnerResult:
    exit_code: int
    stdout: str
    stderr: str


def capture_output(print_result) -> RunnerResult:
    """Run ``print_result()`` (prints, returns an exit code) with stdout captured: a remote reply rendered
    by the same code that prints a local one."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = print_result()
    return RunnerResult(code, out.getvalue(), "")


BOARD_CODE_SKIPPED = ("__pycache__", "pyproject.toml", "*.egg-info", "build")


def board_code(tmp: Path) -> Path:
    """A directory holding only wherry/runtimes: exactly what a board gets (no convert/, no targets/).
    Put it on the board's PYTHONPATH and run `python -m wherry.runtimes`."""
    code = tmp / "code"
    shutil.copytree(RUNTIMES_PACKAGE, code / "wherry" / "runtimes", ignore=shutil.ignore_patterns(*BOARD_CODE_SKIPPED))
    return code


def kept_board_code(cache: Path) -> Path:
    """board_code, kept under ``cache`` per content of the runtimes package. The board's Python then
    compiles it once into __pycache__ next to it (~1.5 s under qemu) instead of on every run."""
    import hashlib
    from fnmatch import fnmatch

    digest = hashlib.sha256()
    for file in sorted(RUNTIMES_PACKAGE.rglob("*")):
        relative = file.relative_to(RUNTIMES_PACKAGE)
        if file.is_file() and not any(fnmatch(part, p) for part in relative.parts for p in BOARD_CODE_SKIPPED):
            digest.update(str(relative).encode() + b"\0" + file.read_bytes())
    target = cache / "code" / digest.hexdigest()[:16]
    if not (target / "wherry" / "runtimes").is_dir():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".partial-", dir=target.parent) as tmp:
            try:
                board_code(Path(tmp)).rename(target)
            except OSError:   # a parallel run put the same content there first
                if not (target / "wherry" / "runtimes").is_dir():
                    raise
    return target


class Device:
    name = "device"

    def run(self, argv: List[str], paths: List[Path]) -> RunnerResult:  # pragma: no cover - interface
        raise NotImplementedError


class LocalDevice(Device):
    name = "local"

    def run(self, argv, paths):
        proc = subprocess.run([sys.executable, "-m", "wherry.runtimes", *argv], capture_output=True, text=True)
        return RunnerResult(proc.returncode, proc.stdout, proc.stderr)


def emulated_board_dir() -> Path:
    """Set up the emulated board if needed (cached); its directory.

    The first setup takes a while (downloads), so the script's progress lines are passed on to
    our stderr as they come; stdout stays clean for --json and carries only the board directory.
    """
    script = Path(__file__).resolve().parent / "emulated_board.sh"
    tail: List[str] = []
    # stdout to a file, not a pipe: nothing reads a pipe while stderr is being followed
    with tempfile.TemporaryFile(mode="w+") as stdout:
        proc = subprocess.Popen(["bash", str(script)], stdout=stdout, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "WHERRY_HOST_PYTHON": sys.executable})
        assert proc.stderr is not None  # stderr=PIPE
        for line in proc.stderr:
            sys.stderr.write(line)
            sys.stderr.flush()
            tail = (tail + [line.rstrip()])[-30:]
        code = proc.wait()
        stdout.seek(0)
        out = stdout.read()
    if code != 0:
        raise DeviceError("cannot set up the emulated aarch64 board:\n" + "\n".join(tail)[-1500:],
                          "it needs root for `apt-get install qemu-user-static` and access to Debian's and "
                          "PyPI's package servers; run scripts/emulated_board.sh to see each step")
    return Path(out.strip().splitlines()[-1])


def install_lite_runtime(board: Path) -> Optional[Path]:
    """Install the aarch64 Paddle Lite runtime built on this host (`wherry targets build-lite`) into
    the emulated board, from its wheel with pip, as on a real board. Returns the directory to put on
    the board's path, or None when no runtime is built (the board then has no Paddle Lite)."""
    import fcntl

    from .. import lite

    runtime = lite.find("aarch64")
    if runtime is None and lite.library_built("aarch64") and not lite.missing_prerequisites("aarch64", need_lib=False):
        # Lite's library is built, only the C interface changed (a new wherry): seconds, no Lite source
        try:
            runtime = lite.build("aarch64", say=lambda msg: log.info("build-lite: %s", msg))
        except lite.BuildError as exc:
            log.warning("cannot rebuild the aarch64 Lite runtime from the cached library: %s", exc.message)
    if runtime is None:
        log.info("no aarch64 Paddle Lite runtime built on this host: the emulated board has no Paddle Lite")
        return None
    # one directory per build (the cache key names it): a rebuilt runtime never replaces the files
    # under a board process that is still running the previous one
    target = board / "paddle-lite-builds" / runtime.folder.parent.name
    stamp = target / ".installed-from"
    if stamp.is_file() and stamp.read_text() == str(runtime.wheel):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(board / "paddle-lite.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.is_file() and stamp.read_text() == str(runtime.wheel):
            return target
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        proc = _pip_for_board(partial, [str(runtime.wheel)])
        if proc.returncode != 0:
            raise DeviceError(f"cannot install {runtime.wheel.name} on the emulated board: "
                              f"{proc.stderr.strip()[-500:]}", "rebuild it with `wherry targets build-lite`")
        (partial / ".installed-from").write_text(str(runtime.wheel))
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        log.info("installed %s on the emulated board", runtime.wheel.name)
    return target


def _pip_for_board(target: Path, requirements: List[str]) -> subprocess.CompletedProcess:
    """``pip install --target`` of aarch64 wheels for the board, with the host's pip (no emulation)."""
    # the board is Debian bookworm (glibc 2.36) with CPython 3.11; pip takes each glibc it accepts
    platforms = [w for minor in range(17, 37) for w in ("--platform", f"manylinux_2_{minor}_aarch64")]
    return subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                           "--no-deps", "--target", str(target), *platforms,
                           "--python-version", "3.11", "--implementation", "cp", "--only-binary=:all:",
                           *requirements], capture_output=True, text=True,
                          env=dict(os.environ, PIP_ROOT_USER_ACTION="ignore"))


def install_board_packages(board: Path, requirements: List[str]) -> Path:
    """A folder of extra aarch64 packages for the board (e.g. LiteRT's interpreter), installed once per set of
    requirements (exact pins, no dependencies: numpy is the board's own) and kept in the board's folder."""
    import hashlib

    target = board / "extra-packages" / hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:12]
    if (target / ".installed").is_file():
        return target
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=_mkdir(target.parent)))
    proc = _pip_for_board(partial, requirements)
    if proc.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise DeviceError(f"cannot install {', '.join(requirements)} on the emulated board: "
                          f"{proc.stderr.strip()[-500:]}", "check access to PyPI; the package needs an aarch64 "
                          "wheel for CPython 3.11")
    (partial / ".installed").write_text("\n".join(requirements))
    try:
        partial.rename(target)
    except OSError:   # a parallel run installed the same set first
        shutil.rmtree(partial, ignore_errors=True)
    return target


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


class EmulatedAarch64(Device):
    """An aarch64 board emulated with qemu-user: real aarch64 numpy, onnxruntime and (when built here)
    Paddle Lite, ~300x slower than native; its timings say nothing about a real board."""

    name = EMULATED

    def __init__(self, packages: Sequence[str] = ()):
        self.packages = list(packages)   # extra pinned aarch64 packages this board gets (install_board_packages)

    def python(self) -> List[str]:
        """The command line of the board's Python, with numpy, onnxruntime, the Lite runtime built here
        (if any), the extra packages and wherry.runtimes on its path: append ``-m wherry.runtimes ...`` or
        ``-c CODE``."""
        board = emulated_board_dir()
        root = board / "sysroot"
        lite_dir = install_lite_runtime(board)
        extra = [install_board_packages(board, self.packages)] if self.packages else []
        qemu = shutil.which("qemu-aarch64-static") or "qemu-aarch64-static"
        path = [board / "site-packages", *([lite_dir] if lite_dir else []), *extra, kept_board_code(board)]
        # env -i: the host's PYTHONPATH and PIP_* must not leak into the board's Python.
        # Host paths (the bundle) are not under the sysroot, so qemu falls through to the host for them.
        # WHERRY_CHILD_LAUNCHER: an isolated session's child Python must be started through qemu too.
        return ["env", "-i", "PATH=/usr/bin:/bin", "PYTHONPATH=" + ":".join(map(str, path)),
                f"{EMULATION_ENV}=qemu user-mode",  # every report from the board says it was emulated
                "WHERRY_CHILD_LAUNCHER=" + shlex.join([qemu, "-L", str(root)]),
                qemu, "-L", str(root), str(root / "usr/bin/python3.11")]

    def run(self, argv, paths):
        proc = subprocess.run([*self.python(), "-m", "wherry.runtimes", *argv], capture_output=True, text=True)
        return RunnerResult(proc.returncode, proc.stdout, proc.stderr)

    def start(self, argv, stdout, stderr) -> subprocess.Popen:
        """Start the runner on the board and return at once (the caller works meanwhile, then waits)."""
        return subprocess.Popen([*self.python(), "-m", "wherry.runtimes", *argv], stdin=subprocess.DEVNULL,
                                stdout=stdout, stderr=stderr, text=True)


class SshDevice(Device):
    """A real board over the system ssh/scp: copy, run, collect, clean up."""

    def __init__(self, url: str):
        parsed = urlparse(url)
        if not parsed.hostname:
            raise DeviceError(f"bad ssh device {url!r}", "use ssh://user@host or ssh://user@host:port")
        # ssh and scp read a destination starting with '-' as an option (-oProxyCommand=... runs a command
        # here); an address from a labgrid coordinator is not trusted, so such names are refused outright
        for part in (parsed.username, parsed.hostname):
            if part and (part.startswith("-") or any(c.isspace() or ord(c) < 32 for c in part)):
                raise DeviceError(f"bad ssh device {url!r}: a user or host name may not start with '-' or hold "
                                  "spaces or control characters", "use ssh://user@host with a real host name")
        self.name = url
        query = dict(part.split("=", 1) for part in parsed.query.split("&") if "=" in part)
        self.python = query.get("python", "python3")
        self.target = f"{parsed.username}@{parsed.hostname}" if parsed.username else parsed.hostname
        try:
            self.port = str(parsed.port or 22)
        except ValueError:   # urllib: not a number, or out of range
            raise DeviceError(f"bad ssh device {url!r}: the port is not a number from 1 to 65535",
                              "use ssh://user@host or ssh://user@host:port") from None
        key = os.environ.get("WHERRY_SSH_KEY")
        common = ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=accept-new", "-o", "ConnectTimeout=15"]
        if os.environ.get("WHERRY_SSH_KNOWN_HOSTS"):
            common += ["-o", f"UserKnownHostsFile={os.environ['WHERRY_SSH_KNOWN_HOSTS']}"]
        if key:
            common += ["-i", key]
        self.ssh = ["ssh", "-p", self.port, *common, self.target]
        self.scp = ["scp", "-q", "-r", "-P", self.port, *common]

    def _ssh(self, command: str, what: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([*self.ssh, command], capture_output=True, text=True)
        if proc.returncode == 255 and _UNREACHABLE.search(proc.stderr):  # no connection at all
            raise BoardUnavailable(f"board unavailable: ssh cannot reach {self.target} port {self.port} while {what}: "
                                   f"{proc.stderr.strip().splitlines()[-1]}",
                                   "check that the board is powered, on the network and runs sshd")
        if proc.returncode == 255:  # ssh's own failure: connection or authentication
            raise DeviceError(f"ssh to {self.target} port {self.port} failed while {what}: "
                              f"{proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else 'no message'}",
                              "check the address, that sshd runs there, and that your key is authorized "
                              "(WHERRY_SSH_KEY=path selects the key)")
        return proc

    def run(self, argv, paths):
        remote = self._ssh("mktemp -d /tmp/wherry-XXXXXX", "creating a work directory").stdout.strip()
        if not remote:
            raise DeviceError(f"cannot create a work directory on {self.target}", "check /tmp on the board")
        try:
            python = shlex.quote(self.python)
            probe = self._ssh(f"{python} -c 'import numpy' 2>&1 || echo WHERRY-NO-NUMPY", f"checking {self.python}")
            if "not found" in probe.stdout + probe.stderr or "No such file" in probe.stdout + probe.stderr:
                raise DeviceError(f"{self.target} has no {self.python}",
                                  "install Python 3.9+ on the board, or name one: ssh://user@host?python=/path")
            if "WHERRY-NO-NUMPY" in probe.stdout:
                raise DeviceError(f"{self.python} on {self.target} has no numpy",
                                  "pip install numpy onnxruntime on the board")
            with tempfile.TemporaryDirectory(prefix="wherry-ssh-") as tmp:
                code = board_code(Path(tmp))
                self._copy([code / "wherry", *paths], remote)
            mapping = {str(p): f"{remote}/{Path(p).name}" for p in paths}
            inputs = _option(argv, "--inputs")
            if inputs:  # run's input file travels with the bundle
                self._copy([Path(inputs)], remote)
                mapping[inputs] = f"{remote}/{Path(inputs).name}"
            # files the runner writes come back: run's --out (on success), check's --junit and --html (a
            # failed check writes them too)
            back = {flag: _option(argv, flag) for flag in ("--out", "--junit", "--html") if _option(argv, flag)}
            for flag, local in back.items():
                mapping[local] = f"{remote}/wherry{flag[1:]}{Path(local).suffix}"
            remote_argv = [mapping.get(a, a) for a in argv]
            command = f"cd {shlex.quote(remote)} && PYTHONPATH={shlex.quote(remote)} {python} -m wherry.runtimes " + \
                " ".join(shlex.quote(a) for a in remote_argv)
            proc = self._ssh(command, "running the runner")
            for flag, local in back.items():
                if proc.returncode in (0, 1):
                    fetched = subprocess.run([*self.scp, f"{self.target}:{mapping[local]}", local],
                                             capture_output=True, text=True)
                    if fetched.returncode != 0 and (flag != "--out" or proc.returncode == 0):
                        raise DeviceError(f"cannot copy {flag} {local} back from {self.target}: "
                                          f"{fetched.stderr.strip()}", "check free space on both sides")
            return RunnerResult(proc.returncode, proc.stdout, proc.stderr)
        finally:
            self._ssh(f"rm -rf {shlex.quote(remote)}", "cleaning up")

    def _copy(self, sources, remote: str) -> None:
        proc = subprocess.run([*self.scp, *map(str, sources), f"{self.target}:{remote}/"], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise DeviceError(f"copying to {self.target} failed: {proc.stderr.strip()[-300:]}",
                              "check free space in /tmp on the board")


# ssh's own messages when no connection could be made (as opposed to a refused key)
_UNREACHABLE = re.compile(r"Connection refused|Connection timed out|timed out during banner|No route to host|"
                          r"Could not resolve hostname|Network is unreachable|Name or service not known|"
                          r"Connection closed by remote host|kex_exchange_identification")


def _option(argv: List[str], name: str) -> Optional[str]:
    return argv[argv.index(name) + 1] if name in argv and argv.index(name) + 1 < len(argv) else None


def connect(device: Optional[str]) -> Device:
    if not device or device == "local":
        return LocalDevice()
    if device == EMULATED:
        return EmulatedAarch64()
    if device.startswith("ssh://"):
        return SshDevice(device)
    if device == "browser" or device.startswith("browser:"):
        from wherry.targets.devices.browser import BrowserDevice
        return BrowserDevice(device)
    if device.startswith("http://"):
        from wherry.targets.devices.http import HttpDevice
        return HttpDevice(device)
    raise DeviceError(f"unknown device {device!r}",
                      f"use local, {EMULATED}, ssh://user@host[:port], http://host:port or browser[:wasm|:webgpu]")
