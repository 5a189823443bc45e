"""Local stand-ins for boards, shared by the device, remote-option and fleet tests: a real sshd on a
loopback port with throwaway keys, and real HTTP runners (`python -m wherry.runtimes serve`)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.paths import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc=None, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the process meant to listen on port {port} exited with {proc.returncode}")
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds:g} s")


def ensure_sshd() -> str:
    if shutil.which("sshd") or Path("/usr/sbin/sshd").exists():
        return "/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else shutil.which("sshd")
    if os.geteuid() != 0:
        pytest.fail("the ssh tests need openssh-server (apt-get install openssh-server) or root to install it")
    subprocess.run(["apt-get", "install", "-y", "-qq", "openssh-server"], check=False, capture_output=True)
    if not Path("/usr/sbin/sshd").exists():
        subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "openssh-server"], check=True, capture_output=True)
    return "/usr/sbin/sshd"


@contextmanager
def sshd_board(home: Path):
    """Yields (ssh URL, environment for wherry, home, port) of a real sshd on 127.0.0.1."""
    sshd_bin = ensure_sshd()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "host_key")], check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / "client_key")], check=True)
    (home / "authorized_keys").write_text((home / "client_key.pub").read_text())
    os.chmod(home / "authorized_keys", 0o600)
    port = free_port()
    config = home / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {home / 'host_key'}\n"
                      f"AuthorizedKeysFile {home / 'authorized_keys'}\nPidFile {home / 'sshd.pid'}\n"
                      "UsePAM no\nPermitRootLogin yes\nPasswordAuthentication no\nStrictModes no\n"
                      "Subsystem sftp internal-sftp\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory sshd insists on
    proc = subprocess.Popen([sshd_bin, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        env = {"WHERRY_SSH_KEY": str(home / "client_key"), "WHERRY_SSH_KNOWN_HOSTS": str(home / "known_hosts")}
        yield f"ssh://root@127.0.0.1:{port}", env, home, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def http_board(token: str = None, pythonpath: str = None, python: str = sys.executable):
    """Yields the URL of a real HTTP runner process (`python -m wherry.runtimes serve`) on 127.0.0.1."""
    port = free_port()
    env = dict(os.environ)
    env.pop("WHERRY_TOKEN", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    argv = [python, "-m", "wherry.runtimes", "serve", "--port", str(port)]
    if token:
        argv += ["--token", token]
    proc = subprocess.Popen(argv, env=env, cwd=pythonpath or REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def wherry_cli(*args, env=None, timeout=600) -> subprocess.CompletedProcess:
    """The host CLI in a child process, with extra environment variables."""
    return subprocess.run([sys.executable, "-m", "wherry.convert.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, **(env or {})}, timeout=timeout)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()
