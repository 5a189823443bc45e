"""Every error one line (issue 27, finding 11): hostile or unlucky zoo files, build-lite --source archives,
fleet --env files, a full disk under convert and a bundle name longer than the file system allows each give
one readable error (exit 2), never a traceback, and leave nothing half-written. Each case was a traceback
(or, for the full disk, a wrong diagnosis: "Paddle Lite opt crashed") before its fix. The bundle, upload and
HTTP cases of the finding are in test_hostile.py (test_11_*)."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from support.hostile_fixtures import nest_folders
from support.paths import REPO
from wherry.convert.example import MODEL
from wherry.targets import lite


def _one_error(proc, prog="wherry"):
    """Exit 2 with one error line (and maybe a hint), never a traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith(("[", "  "))]
    errors = [ln for ln in lines if ln.startswith(f"{prog}: error: ")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


# ----------------------------------------------------------------------------- zoo files

ZOO_CASES = {
    "model path longer than the file system allows": ('path = "{long}/m.pdmodel"', "not found"),
    "data path longer than the file system allows": ('path = "m.pdmodel"\ninputs = "{long}.npz"', "not found"),
    "profile path longer than the file system allows": ('path = "m.pdmodel"\ntargets = ["{long}.toml"]',
                                                        "not found"),
    "nesting deeper than TOML allows": ('path = "m.pdmodel"\nshapes = ' + "[" * 3000 + "]" * 3000, "not valid TOML"),
}


@pytest.mark.parametrize("case", list(ZOO_CASES))
def test_a_hostile_zoo_file_is_one_error(wherry, tmp_path, case):
    body, expected = ZOO_CASES[case]
    (tmp_path / "m.pdmodel").write_bytes(b"x")
    zoo = tmp_path / "zoo.toml"
    zoo.write_text("[models.a]\n" + body.format(long="a" * 300) + "\n")
    error = _one_error(wherry("zoo", zoo, "-o", tmp_path / "out", timeout=120))
    assert expected in error and len(error) < 400, error
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ----------------------------------------------------------------------------- build-lite --source archives

def _archive(path: Path, members, mode="w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _special(name, kind, target=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _good_archive(path):
    return _archive(path, [_file("Paddle-Lite/lite/api/paddle_api.h", b"// api\n")])


ARCHIVES = {
    "not an archive": (lambda p: p.write_bytes(os.urandom(4096)) and p, "cannot read"),
    "truncated": (lambda p: p.write_bytes(_good_archive(p).read_bytes()[:60]) and p, "cannot"),
    # the "data" filter unpacks an absolute name below the folder (the leading / dropped), never at /etc
    "absolute member path": (lambda p: _archive(p, [_file("/etc/wherry-owned")]), "does not hold"),
    "member climbing out with ..": (lambda p: _archive(p, [_file("src/../../outside")]), "will not unpack"),
    "symlink pointing outside": (lambda p: _archive(p, [_special("src/link", tarfile.SYMTYPE, "/etc/passwd"),
                                                        _file("src/lite/api/paddle_api.h")]), "will not unpack"),
    "device file": (lambda p: _archive(p, [_special("src/dev", tarfile.CHRTYPE)]), "will not unpack"),
    "member name longer than the file system allows": (lambda p: _archive(p, [_file("src/" + "n" * 300)]),
                                                       "cannot unpack"),
    "no Paddle Lite source in it": (lambda p: _archive(p, [_file("readme.txt")]), "does not hold"),
    # a RecursionError traceback from os.makedirs before the depth limit (issue 27 re-check)
    "member 2000 folders deep": (lambda p: _archive(p, [_file("src/" + "d/" * 2000 + "f")]), "names deep"),
    "a staircase of folders 1500 deep": (lambda p: _archive(p, [_special("src/" + "d/" * n, tarfile.DIRTYPE)
                                                                for n in range(1, 1500)]), "names deep"),
}


@pytest.mark.parametrize("case", list(ARCHIVES))
def test_a_bad_lite_source_archive_is_one_build_error(tmp_path, case):
    make, expected = ARCHIVES[case]
    archive = make(tmp_path / "lite.tar.gz")
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(lite.BuildError) as raised:
        lite.prepare_source(str(archive), work, lambda msg: None)
    assert expected in raised.value.message and "\n" not in raised.value.message, raised.value.message
    assert not Path("/etc/wherry-owned").exists()
    assert not (tmp_path / "outside").exists()


def test_an_unreadable_source_tree_is_one_build_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    src = tmp_path / "src"
    (src / "lite" / "api").mkdir(parents=True)
    (src / "lite" / "api" / "paddle_api.h").write_text("//")
    (src / "secret").write_text("x")
    (src / "secret").chmod(0)
    with pytest.raises(lite.BuildError, match="cannot copy"):
        lite.prepare_source(str(src), tmp_path / "work", lambda msg: None)


def test_a_source_tree_nested_too_deeply_to_copy_is_one_build_error(tmp_path):
    """copytree recurses once per folder: a tree 1200 folders deep was a RecursionError traceback."""
    src = tmp_path / "src"
    (src / "lite" / "api").mkdir(parents=True)
    (src / "lite" / "api" / "paddle_api.h").write_text("//")
    nest_folders(src, 1200)
    work = tmp_path / "work"
    work.mkdir()
    try:
        with pytest.raises(lite.BuildError, match="nest too deeply") as raised:
            lite.prepare_source(str(src), work, lambda msg: None)
        assert "\n" not in raised.value.message
    finally:   # bottom up, so that pytest's own (recursive) removal of tmp_path never meets the chain
        for depth in range(1200, 0, -1):
            os.rmdir(src.joinpath(*["d"] * depth))
        shutil.rmtree(work)


# ----------------------------------------------------------------------------- convert: names and full disks

def test_a_bundle_name_longer_than_the_file_system_allows_is_one_error(wherry, tmp_path):
    out = tmp_path / "out"
    proc = wherry("convert", MODEL, "-o", out, "--format", "onnx", "--no-verify", "--name", "n" * 300)
    assert "longer than the file system allows" in _one_error(proc)
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def _tmpfs(path: Path, size: str):
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {proc.stderr.decode().strip()}")


def _convert_on_a_full_disk(tmp_path, size):
    disk = tmp_path / "disk"
    _tmpfs(disk, size)
    try:
        out = disk / "out"
        proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "convert", str(MODEL), "-o", str(out),
                               "--target", "desktop-x86_64"], capture_output=True, text=True, cwd=REPO, timeout=600)
        left = sorted(p.name for p in out.iterdir()) if out.exists() else []
        return proc, left
    finally:
        subprocess.run(["umount", "-l", str(disk)])


def test_lite_failing_on_a_full_disk_is_diagnosed_as_the_disk(tmp_path):
    """100 KiB: Paddle Lite's opt aborted in fwrite and the error blamed Lite ("opt crashed (SIGABRT)")."""
    proc, left = _convert_on_a_full_disk(tmp_path, "100k")
    error = _one_error(proc)
    assert "no space left on the disk" in error and "crashed" not in error, proc.stderr
    assert left == [], left


@pytest.mark.slow
@pytest.mark.parametrize("size", ["8k", "64k", "200k", "300k", "400k"])
def test_convert_on_a_full_disk_is_one_error_at_every_step(tmp_path, size):
    """The disk fills at a different step for each size (legalizing, copying the parameters, the ONNX export,
    the debug program, the report): each was a traceback; now one error naming the full disk, nothing left."""
    proc, left = _convert_on_a_full_disk(tmp_path, size)
    assert "no space left on the disk" in _one_error(proc), proc.stderr
    assert left == [], left
