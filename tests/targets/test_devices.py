"""Target profiles and device connections, with the on-device runner executed for real:
on an emulated aarch64 board (qemu user-mode, aarch64 numpy + onnxruntime) and over ssh."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support.paths import REPO
from support.board_fixtures import sshd_board
from support.runtime_fixtures import rehash
from wherry.convert.example import INPUTS, MODEL
from wherry.targets import list_profiles, load_profile
from wherry.targets.profile import ProfileError


@pytest.fixture(scope="module")
def rpi4_bundle(wherry, tmp_path_factory):
    out = tmp_path_factory.mktemp("rpi4")
    wherry("convert", MODEL, "--inputs", INPUTS, "-t", "rpi4", "-o", out, check=0)
    return out / "digits_cnn.rpi4"


def test_profiles_load_and_validate(tmp_path):
    names = list_profiles()
    for required in ("desktop-x86_64", "rpi4", "rpi5", "rk3588", "jetson-orin", "armv7-linux", "android-arm64",
                     "android-armv7"):
        assert required in names
    assert {load_profile(n).arch_family for n in names} == {"x86", "arm", "any"}  # any: the web (wasm32)
    mine = tmp_path / "board.toml"
    mine.write_text((REPO / "targets/profiles/rpi4.toml").read_text().replace('name = "rpi4"', 'name = "myboard"'))
    assert load_profile(str(mine)).name == "myboard"
    mine.write_text('name = "x"\ndescription = "d"\narch = "mips"\nos = "linux"\nartifacts = ["nb"]\nlite_places = ["arm"]\n')
    with pytest.raises(ProfileError, match="arch 'mips'"):
        load_profile(str(mine))
    mine.write_text('name = "x"\n')
    with pytest.raises(ProfileError, match="lacks"):
        load_profile(str(mine))


def test_targets_command(wherry):
    listing = wherry("targets", check=0).stdout
    assert "rk3588" in listing and "android-arm64" in listing
    shown = wherry("targets", "show", "android-arm64", check=0).stdout
    assert "opencl, arm" in shown and "android" in shown


def test_user_profile_file_converts(wherry, tmp_path):
    board = tmp_path / "myboard.toml"
    board.write_text((REPO / "targets/profiles/rpi4.toml").read_text().replace('name = "rpi4"', 'name = "myboard"'))
    wherry("convert", MODEL, "--inputs", INPUTS, "-t", board, "-o", tmp_path / "out", check=0)
    manifest = json.loads((tmp_path / "out" / "digits_cnn.myboard" / "manifest.json").read_text())
    assert manifest["target"]["name"] == "myboard" and manifest["target"]["arch"] == "aarch64"


def test_emulated_board_sets_up_from_nothing_with_a_310_venv_first_on_path(tmp_path):
    """A new machine: an empty cache, and wherry's Python 3.10 venv first on PATH (as `.venv/bin/wherry`
    and the CI example put it). pip 23 in that venv once refused every numpy wheel for the 3.11 board."""
    import sys

    if shutil.which("qemu-aarch64-static") is None and os.geteuid() != 0:
        pytest.skip("qemu-aarch64-static is not installed and this user is not root (the set-up apt-installs it)")
    env = {k: v for k, v in os.environ.items() if k != "WHERRY_HOST_PYTHON"}  # the script as run by hand
    env.update(WHERRY_CACHE=str(tmp_path / "cache"), PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    assert subprocess.run(["python3", "-c", "import sys; print(sys.version_info[:2])"], env=env,
                          capture_output=True, text=True).stdout.strip() == "(3, 10)"
    proc = subprocess.run(["bash", str(REPO / "scripts/emulated_board.sh")], env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = Path(proc.stdout.strip().splitlines()[-1])
    assert board == tmp_path / "cache" / "emulated-aarch64"
    root = board / "sysroot"
    code = "import platform, numpy, onnxruntime; print(platform.machine(), numpy.__version__, onnxruntime.__version__)"
    ran = subprocess.run(["env", "-i", "PATH=/usr/bin:/bin", f"PYTHONPATH={board / 'site-packages'}",
                          "qemu-aarch64-static", "-L", str(root), str(root / "usr/bin/python3.11"), "-c", code],
                         capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-2000:]
    machine, numpy_version, _ = ran.stdout.split()
    assert machine == "aarch64" and int(numpy_version.split(".")[0]) >= 1
    # the board, now cached, on a PATH without qemu (a cache restored on a new machine): qemu is looked for
    # on every use, not only when the board is built
    bin_dir = tmp_path / "bin-without-qemu"
    bin_dir.mkdir()
    for tool in ("bash", "apt-get", "id", "grep", "ls", "wc", "nproc", "mkdir", "mv", "printf", "flock", "dirname"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    if os.geteuid() == 0:
        again = subprocess.run([shutil.which("bash"), str(REPO / "scripts/emulated_board.sh")], capture_output=True,
                               text=True, env={**env, "PATH": str(bin_dir)}, timeout=600)
        assert "installing qemu-user-static" in again.stderr, again.stderr
        assert again.stdout.strip().splitlines()[-1] == str(board)


@pytest.mark.slow
def test_check_on_emulated_aarch64_board(wherry, rpi4_bundle, lite_runtime_settled):
    info = wherry("info", "--device", "emulated-aarch64", check=0).stdout
    assert "aarch64" in info and "onnxruntime" in info
    proc = wherry("check", rpi4_bundle, "--device", "emulated-aarch64", "--json", timeout=900)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stderr
    results = {a["file"]: a for a in report["artifacts"]}
    assert results["model.onnx"]["status"] == "passed"
    if lite_runtime_settled:  # Paddle Lite's ARM runtime is built here: the board runs the .nb (test_lite_arm.py)
        assert results["model.arm.nb"]["status"] == "passed"
    else:
        assert results["model.arm.nb"]["status"] == "not verifiable here"
        assert "no Paddle Lite runtime on this device" in results["model.arm.nb"]["reason"]
    assert report["device"]["machine"] == "aarch64" and report["device"]["cpu"] == "0xd08"  # Cortex-A72
    assert report["device"]["emulated"] == "qemu user-mode"   # never passed off as a real board
    table = wherry("check", rpi4_bundle, "--device", "emulated-aarch64", "--artifact", "model.onnx", timeout=900)
    assert "(device aarch64, emulated (qemu user-mode))" in table.stdout, table.stdout
    bench = wherry("bench", rpi4_bundle, "--artifact", "model.onnx", "--device", "emulated-aarch64", "--runs", "2",
                   "--warmup", "0", timeout=900)
    assert bench.returncode == 0 and "the emulator's times" in bench.stdout, bench.stdout + bench.stderr


@pytest.mark.slow
def test_altered_bundle_fails_on_the_emulated_board(wherry, rpi4_bundle, tmp_path):
    import numpy as np

    bad = tmp_path / "bad"
    shutil.copytree(rpi4_bundle, bad)
    golden = dict(np.load(bad / "golden" / "outputs.npz"))
    golden = {k: v + 1.0 for k, v in golden.items()}  # the board must notice outputs that do not match
    np.savez(bad / "golden" / "outputs.npz", **golden)
    rehash(bad, "golden/outputs.npz")  # vouched for by the manifest: the board must judge the outputs
    proc = wherry("check", bad, "--device", "emulated-aarch64", timeout=900)
    assert proc.returncode == 1
    assert "model.onnx" in proc.stdout and "FAIL" in proc.stdout


def test_unknown_device(wherry, rpi4_bundle):
    proc = wherry("check", rpi4_bundle, "--device", "toaster://x")
    assert proc.returncode == 2 and "unknown device" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------- ssh

@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """A real sshd on a loopback port with a throwaway key, as a stand-in for a board."""
    with sshd_board(tmp_path_factory.mktemp("sshd")) as (url, env, home, _):
        yield url, env, home


def _wherry_env(env, *args):
    import sys
    return subprocess.run([sys.executable, "-m", "wherry.convert.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, **env}, timeout=600)


def test_check_over_ssh(sshd, rpi4_bundle):
    import sys

    url, env, _ = sshd
    # the "board" runs a Python with numpy and onnxruntime, chosen in the device URL
    proc = _wherry_env(env, "check", rpi4_bundle, "--device", f"{url}?python={sys.executable}", "--json")
    assert proc.returncode == 0, proc.stderr
    results = {a["file"]: a for a in json.loads(proc.stdout)["artifacts"]}
    assert results["model.onnx"]["status"] == "passed"
    assert results["model.arm.nb"]["status"] == "not verifiable here"
    # the board is left clean
    remote = subprocess.run(["ls", "/tmp"], capture_output=True, text=True).stdout
    assert not any(line.startswith("wherry-") and Path("/tmp", line, "digits_cnn.rpi4").exists()
                   for line in remote.split())


def test_run_over_ssh_brings_outputs_back(sshd, rpi4_bundle, tmp_path):
    import sys

    import numpy as np

    url, env, _ = sshd
    np.savez(tmp_path / "in.npz", x=np.load(INPUTS)["x"][:3])
    proc = _wherry_env(env, "run", rpi4_bundle, "--artifact", "model.onnx", "--inputs", tmp_path / "in.npz",
                       "--out", tmp_path / "out.npz", "--device", f"{url}?python={sys.executable}")
    assert proc.returncode == 0, proc.stderr
    outputs = np.load(tmp_path / "out.npz")
    assert outputs[outputs.files[0]].shape == (3, 10)


def test_ssh_board_python_without_numpy(sshd, rpi4_bundle, tmp_path):
    """A board whose Python lacks numpy: one clear message naming what to install."""
    venv = tmp_path / "bare-venv"
    subprocess.run(["python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    url, env, _ = sshd
    proc = _wherry_env(env, "check", rpi4_bundle, "--device", f"{url}?python={venv / 'bin/python'}")
    assert proc.returncode == 2 and "has no numpy" in proc.stderr and "pip install numpy" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ssh_auth_failure_is_clear(sshd, rpi4_bundle, tmp_path):
    url, env, _ = sshd
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "stranger")], check=True)
    proc = _wherry_env({**env, "WHERRY_SSH_KEY": str(tmp_path / "stranger")}, "check", rpi4_bundle, "--device", url)
    assert proc.returncode == 2 and "ssh to root@127.0.0.1" in proc.stderr and "Traceback" not in proc.stderr


def test_ssh_board_without_python(sshd, rpi4_bundle):
    url, env, _ = sshd
    proc = _wherry_env(env, "check", rpi4_bundle, "--device", f"{url}?python=/nonexistent/python3")
    assert proc.returncode == 2 and "has no /nonexistent/python3" in proc.stderr and "Traceback" not in proc.stderr


def test_ssh_board_with_numpy_but_no_backend(sshd, rpi4_bundle, tmp_path):
    """numpy but no onnxruntime on the board: the onnx artifact is reported unverifiable, naming what is missing."""
    import sys
    import sysconfig

    venv = tmp_path / "numpy-only"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    host_site = Path(sysconfig.get_paths()["purelib"])
    only = tmp_path / "numpy-site"
    only.mkdir()
    for name in ("numpy", "numpy.libs"):  # numpy alone, none of the backends next to it
        if (host_site / name).exists():
            (only / name).symlink_to(host_site / name)
    board_site = next(venv.glob("lib/python*/site-packages"))
    (board_site / "numpy-only.pth").write_text(f"{only}\n")
    url, env, _ = sshd
    proc = _wherry_env(env, "check", rpi4_bundle, "--device", f"{url}?python={venv / 'bin/python'}", "--json")
    assert proc.returncode == 1, proc.stderr
    results = {a["file"]: a for a in json.loads(proc.stdout)["artifacts"]}
    assert results["model.onnx"]["status"] == "not verifiable here"
    assert "onnxruntime" in results["model.onnx"]["reason"]
