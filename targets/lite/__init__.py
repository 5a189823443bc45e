"""Paddle Lite's ARM runtime, built here: `wherry targets build-lite --arch aarch64`.

No registry carries Paddle Lite for ARM Linux with a Python API, so wherry cross-builds Lite's
light API (the part that loads .nb files) from Lite's public source with Debian's cross compiler,
adds a small C interface (`wherry_lite.cc`, loaded with ctypes by the runtimes package), and
packages both as a self-contained runtime folder and a wheel to copy to a board.

Two cached stages, each keyed on what it is built from, in the user cache (never the checkout):

    $WHERRY_CACHE | $XDG_CACHE_HOME/wherry | ~/.cache/wherry
      paddle-lite/<tag>-<commit12>-<arch>/
        lib-<recipe key>/       Lite's libpaddle_light_api_shared.so + public headers (~20 min)
        runtime-<shim key>/     wherry_lite_runtime/ (the runtime folder) + the .whl (seconds)

The recipe key hashes the cmake options (`build_lite.sh recipe`); the shim key hashes the C
interface, the build script and the packaging code. A finished stage is reused; a changed one is
rebuilt. When only the shim key changed (an edit to the C interface or the packaging), the cached
library suffices: the runtime is rebuilt from it in seconds, with no Lite source and no cmake. `build_lite.sh` does the compiling; this module checks prerequisites, fetches or unpacks
the source, locks, caches and packages.
"""
from __future__ import annotations

import errno
import fcntl
import gzip
import hashlib
import json
import logging
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zlib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional

from wherry.runtimes import leftovers
from wherry.runtimes.errors import WherryError
from ..cache import cache_root  # the user cache: Lite's builds live under it

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "build_lite.sh"
SHIM_SOURCE = HERE / "wherry_lite.cc"
PACKAGE_TEMPLATE = HERE / "runtime_init.py.in"  # the runtime folder's __init__.py

#: The Paddle Lite revision whose .nb format matches the paddle_lite_opt wherry converts with
#: (PyPI paddlelite 2.13rc0 writes "v2.13-rc" into every .nb it produces).
LITE_TAG = "v2.13-rc"
LITE_COMMIT = "102697b54f58bbc775f82945c14cf7f16027ddd4"
LITE_VERSION = "2.13rc0"
LITE_REPOSITORY = "https://github.com/PaddlePaddle/Paddle-Lite.git"

RUNTIME_PACKAGE = "wherry_lite_runtime"     # the runtime folder is also this Python package
RUNTIME_DIST = "wherry-lite-runtime"


@dataclass(frozen=True)
class Arch:
    name: str          # aarch64 | armv7hf
    cross: str         # GNU triplet of the Debian cross toolchain
    compiler_package: str
    wheel_machine: str  # the machine part of the wheel's platform tag
    uname: tuple       # what `uname -m` says on such a board


ARCHES = {
    "aarch64": Arch("aarch64", "aarch64-linux-gnu", "g++-aarch64-linux-gnu", "aarch64", ("aarch64", "arm64")),
    "armv7hf": Arch("armv7hf", "arm-linux-gnueabihf", "g++-arm-linux-gnueabihf", "armv7l", ("armv7l", "armv8l")),
}


class BuildError(WherryError):
    """The ARM runtime cannot be built: a prerequisite is missing or the build failed."""


@dataclass
class Runtime:
    """A finished runtime: the folder to load or copy, the wheel, and what it was built from."""

    arch: str
    folder: Path           # .../wherry_lite_runtime (libwherry_lite.so, Lite, libgomp, runtime.json)
    wheel: Path
    info: dict
    built_now: bool = False
    seconds: float = 0.0

    def size(self) -> int:
        return sum(p.stat().st_size for p in self.folder.rglob("*") if p.is_file())


# ----------------------------------------------------------------------------- cache layout

def _arch(name: str) -> Arch:
    if name not in ARCHES:
        raise BuildError(f"unknown ARM architecture {name!r}", f"choose one of {', '.join(ARCHES)}")
    return ARCHES[name]


def recipe(arch: str) -> str:
    """The exact cmake options of the Lite build (printed by the build script)."""
    return subprocess.run([_bash(), str(SCRIPT), "recipe", _arch(arch).name], check=True, capture_output=True,
                          text=True).stdout.strip()


def _bash() -> str:
    return shutil.which("bash") or "/bin/bash"


def _digest(*parts: bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:12]


def lib_key(arch: str) -> str:
    return _digest(recipe(arch).encode())


def shim_key(arch: str) -> str:
    return _digest(SHIM_SOURCE.read_bytes(), SCRIPT.read_bytes(), PACKAGE_TEMPLATE.read_bytes(),
                   Path(__file__).read_bytes(), arch.encode())


def arch_dir(arch: str) -> Path:
    return cache_root() / "paddle-lite" / f"{LITE_TAG}-{LITE_COMMIT[:12]}-{arch}"


def lib_dir(arch: str) -> Path:
    return arch_dir(arch) / f"lib-{lib_key(arch)}"


def runtime_dir(arch: str) -> Path:
    return arch_dir(arch) / f"runtime-{shim_key(arch)}"


def library_built(arch: str = "aarch64") -> bool:
    """Whether Lite's library for the current recipe is in the cache: then `build` needs no source."""
    return (lib_dir(arch) / "lite.json").is_file()


def find(arch: str = "aarch64") -> Optional[Runtime]:
    """The finished runtime for ``arch`` in the cache, or None (never builds)."""
    root = runtime_dir(arch)
    folder = root / RUNTIME_PACKAGE
    wheels = sorted(root.glob("*.whl"))
    if not (folder / "runtime.json").is_file() or not wheels:
        return None
    return Runtime(arch, folder, wheels[0], json.loads((folder / "runtime.json").read_text()))


# ----------------------------------------------------------------------------- prerequisites

def _tools(arch: str, need_lib: bool) -> List[tuple]:
    """(command, Debian package, what to say when it is missing) for each tool a build needs: the cross
    compiler always (the C interface), the rest only to build Lite's library itself."""
    a = _arch(arch)
    tools = [(f"{a.cross}-g++", a.compiler_package, f"cross compiler {a.cross}-g++ not found")]
    if need_lib:
        tools += [("cmake", "cmake", "cmake not found"), ("make", "make", "make not found"),
                  ("git", "git", "git not found (Lite's build takes its version from git)"),
                  ("python3", "python3", "python3 not found (Lite's build generates sources with it)")]
    return tools


def missing_prerequisites(arch: str, need_lib: bool, source: Optional[str] = None) -> List[str]:
    """One line per missing tool or source, each saying how to get it (empty when all are there)."""
    missing = []
    if need_lib and source is not None and not Path(source).expanduser().exists():
        missing.append(f"Paddle Lite source {source} does not exist: pass a directory or a .tar.gz of Paddle "
                       f"Lite's source at tag {LITE_TAG}, or leave --source out to clone it from {LITE_REPOSITORY}")
    missing += [f"{said}: apt-get install {package}" for command, package, said in _tools(arch, need_lib)
                if not shutil.which(command)]
    return missing


def installable_prerequisites(arch: str, need_lib: bool) -> List[str]:
    """The Debian packages of the missing tools, when this process may install them (root, apt-get);
    empty otherwise. As the emulated board installs its qemu, a bare machine needs no hand step."""
    missing = [package for command, package, _ in _tools(arch, need_lib) if not shutil.which(command)]
    if not missing or os.geteuid() != 0 or not shutil.which("apt-get"):
        return []
    return missing


def install_prerequisites(packages: List[str], say: Callable[[str], None]) -> None:
    """apt-get install the packages (refreshing the package lists once when the first try fails)."""
    say(f"installing {' '.join(packages)} (apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    command = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
    proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, text=True)
        proc = subprocess.run(command, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"cannot install {' '.join(packages)}: "
                         f"{(proc.stderr.strip().splitlines() or ['apt-get failed'])[-1]}",
                         f"install them yourself (apt-get install {' '.join(packages)}), then run the command again")


# ----------------------------------------------------------------------------- source

def _git(args: List[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-c", "user.name=wherry", "-c", "user.email=wherry@localhost",
                           "-c", "advice.detachedHead=false", *args], cwd=cwd, capture_output=True, text=True,
                          check=check)


def _archive_commit(archive: Path) -> Optional[str]:
    """The commit `git archive` recorded in the archive's pax header, if any."""
    try:
        with tarfile.open(archive) as tar:
            comment = tar.pax_headers.get("comment", "")
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise BuildError(f"cannot read the Paddle Lite archive {archive}: {_flat(exc)}",
                         "pass a .tar.gz of Paddle Lite's source (e.g. GitHub's archive of tag "
                         f"{LITE_TAG})") from None
    return comment.strip() if len(comment.strip()) == 40 else None


def _wrong_revision(what: str, found: str) -> BuildError:
    return BuildError(f"{what} is Paddle Lite {found}, not {LITE_TAG} (commit {LITE_COMMIT[:12]})",
                      f"wherry converts with paddle_lite_opt {LITE_VERSION}, which writes {LITE_TAG} into every "
                      f".nb; a runtime of another revision may not load them. Pass the source of tag {LITE_TAG}")


def _tag_tree(src: Path) -> None:
    """Make an unpacked source tree a git tree at the pinned tag: Lite's cmake names the version
    from `git describe`, and the tree is the pinned revision (checked before)."""
    if (src / ".git").exists():
        shutil.rmtree(src / ".git")
    _git(["init", "-q"], src)
    _git(["add", "-A"], src)
    _git(["commit", "-q", "-m", f"Paddle Lite {LITE_TAG} ({LITE_COMMIT})"], src)
    _git(["tag", LITE_TAG], src)


def prepare_source(source: Optional[str], work: Path, say: Callable[[str], None]) -> Path:
    """A git tree of the pinned Lite revision under ``work``, from a directory, an archive, or
    Lite's public repository when ``source`` is None."""
    src = work / "src"
    if source is None:
        # WHERRY_LITE_REPOSITORY: a mirror of Lite's repository (e.g. where github.com is slow or blocked)
        repository = os.environ.get("WHERRY_LITE_REPOSITORY", LITE_REPOSITORY)
        say(f"cloning Paddle Lite {LITE_TAG} from {repository}")
        proc = subprocess.run(["git", "-c", "advice.detachedHead=false", "clone", "-q", "--depth", "1", "--branch",
                               LITE_TAG, repository, str(src)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise BuildError(f"no Paddle Lite source: cloning {repository} failed "
                             f"({(proc.stderr.strip().splitlines() or ['no message'])[-1]})",
                             f"pass --source DIR or --source ARCHIVE (Paddle Lite's source at tag {LITE_TAG}), "
                             "or run where github.com is reachable")
        return src
    path = Path(source).expanduser()
    if not path.exists():
        raise BuildError(f"Paddle Lite source {path} does not exist",
                         f"pass a directory or a .tar.gz of Paddle Lite's source at tag {LITE_TAG}")
    if path.is_file():
        commit = _archive_commit(path)
        if commit and commit != LITE_COMMIT:
            raise _wrong_revision(str(path), f"commit {commit[:12]}")
        say(f"unpacking {path.name}")
        unpack = work / "unpack"
        unpack.mkdir(parents=True, exist_ok=True)
        _unpack_source(path, unpack)
        entries = list(unpack.iterdir())
        top = entries[0] if len(entries) == 1 and entries[0].is_dir() else unpack
        top.rename(src)
    else:
        if not (path / "lite" / "api" / "paddle_api.h").is_file():
            raise BuildError(f"{path} is not Paddle Lite's source tree (no lite/api/paddle_api.h)",
                             f"pass the top directory of Paddle Lite's source at tag {LITE_TAG}")
        if (path / ".git").exists():
            head = _git(["rev-parse", "HEAD"], path, check=False).stdout.strip()
            if head and head != LITE_COMMIT:
                raise _wrong_revision(str(path), f"commit {head[:12]}")
        say(f"copying {path}")
        try:
            shutil.copytree(path, src, symlinks=True)
        except (shutil.Error, OSError) as exc:
            raise _copy_error(f"cannot copy the Paddle Lite source {path}", exc) from None
        except RecursionError:   # copytree recurses once per folder
            raise BuildError(f"cannot copy the Paddle Lite source {path}: its folders nest too deeply to copy",
                             f"pass Paddle Lite's source at tag {LITE_TAG} (its deepest file is 15 names deep)") \
                from None
        if not (path / ".git").exists():
            log.warning("%s is not a git tree: its revision cannot be checked; assuming %s", path, LITE_TAG)
    if not (src / "lite" / "api" / "paddle_api.h").is_file():
        raise BuildError(f"{path} does not hold Paddle Lite's source (no lite/api/paddle_api.h)",
                         f"pass Paddle Lite's source at tag {LITE_TAG}")
    if _git(["describe", "--tags", "--exact-match"], src, check=False).stdout.strip() != LITE_TAG:
        _tag_tree(src)
    return src


MAX_SOURCE_DEPTH = 64   # Paddle Lite v2.13-rc's deepest member is 15 names deep


def _depth(name: str) -> int:
    return len([part for part in name.split("/") if part not in ("", ".")])


class _TooDeep(tarfile.FilterError):
    def __init__(self, tarinfo: tarfile.TarInfo):
        self.tarinfo = tarinfo
        super().__init__(f"{tarinfo.name[:80]!r}... is nested {_depth(tarinfo.name)} names deep "
                         f"(at most {MAX_SOURCE_DEPTH})")


def _source_filter(member: tarfile.TarInfo, dest: str) -> Optional[tarfile.TarInfo]:
    """Python's "data" filter, and no member deeper than MAX_SOURCE_DEPTH: os.makedirs recurses once per
    folder (a RecursionError at ~1000), and so would removing such a tree afterwards."""
    if _depth(member.name) > MAX_SOURCE_DEPTH:
        raise _TooDeep(member)
    return tarfile.data_filter(member, dest)


def _unpack_source(archive: Path, dest: Path) -> None:
    """Unpack a source archive with the "data" filter (no absolute paths, no '..', no links out, no device
    files) and a depth limit: a damaged, truncated or hostile archive, or a full disk, is one BuildError,
    never a traceback."""
    try:
        with tarfile.open(archive) as tar:
            try:
                tar.extractall(dest, filter=_source_filter if hasattr(tarfile, "data_filter") else "data")
            except TypeError:  # Python < 3.10.12 has no extraction filters; a source archive is trusted input
                tar.extractall(dest)
    except tarfile.FilterError as exc:
        raise BuildError(f"the Paddle Lite archive {archive} holds a member wherry will not unpack: {_flat(exc)}",
                         "pass the archive of Paddle Lite's source as published (plain files and folders "
                         "inside one top folder)") from None
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, UnicodeError) as exc:
        raise BuildError(f"cannot unpack the Paddle Lite archive {archive}: it is damaged or truncated "
                         f"({_flat(exc)})",
                         f"download the source of tag {LITE_TAG} again") from None
    except OSError as exc:
        raise _copy_error(f"cannot unpack the Paddle Lite archive {archive}", exc) from None


def _flat(exc: BaseException) -> str:
    """An exception's text on one line (tarfile lists every method it tried on lines of their own)."""
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _copy_error(what: str, exc: BaseException) -> BuildError:
    """A failed copy or unpack as one error, with the cause named (a full disk says so)."""
    if isinstance(exc, shutil.Error):   # copytree's list of (source, destination, reason)
        first = exc.args[0][0] if exc.args and exc.args[0] and isinstance(exc.args[0], list) else exc
        reason = first[2] if isinstance(first, tuple) and len(first) == 3 else str(first)
        return BuildError(f"{what}: {reason}", "make every file of the source tree readable")
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return BuildError(f"{what}: no space left on {getattr(exc, 'filename', None) or 'the disk'}",
                          f"the source needs about 1 GB in {tempfile.gettempdir()} (set TMPDIR to a roomier "
                          "disk) and the build as much again")
    name = getattr(exc, "filename", None)
    return BuildError(f"{what}: {getattr(exc, 'strerror', None) or exc}" + (f" ({name})" if name else ""),
                      f"pass Paddle Lite's source at tag {LITE_TAG} as a directory or a .tar.gz")


# ----------------------------------------------------------------------------- build

_WORK_PREFIX = "wherry-lite-build"


def _sweep(arch: str) -> None:
    """Remove what killed builds left: under the build lock no other build of ``arch`` runs, so every
    ``.partial-`` folder in its cache is stale; source and build trees (~240 MB each) in the temporary
    directory are removed when the process that made them is gone."""
    for partial in arch_dir(arch).glob("*.partial-*"):
        try:
            leftovers.remove(partial)
            log.info("removed %s, left by an interrupted build", partial)
        except OSError:
            pass
    leftovers.sweep(tempfile.gettempdir(), _WORK_PREFIX)


@contextmanager
def _locked(path: Path, say: Callable[[str], None]):
    """One build per arch at a time (parallel test runs, two terminals)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"another build holds {path}; waiting for it")
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_script(args: List[str], env: dict) -> None:
    """Run build_lite.sh; its progress lines (stderr) go straight to ours."""
    proc = subprocess.run([_bash(), str(SCRIPT), *args], env=env, stdout=sys.stderr)
    if proc.returncode != 0:
        raise BuildError(f"building Paddle Lite failed ({' '.join(args[:2])}); its last lines are above",
                         "fix what the log names, then run the command again (finished stages are kept)")


def _build_lib(arch: str, source: Optional[str], jobs: Optional[int], say) -> Path:
    out = lib_dir(arch)
    if library_built(arch):
        say(f"Paddle Lite's library for this recipe is cached ({out.name}): building only the C interface"
            + (f" (the source {source} is not needed)" if source else ""))
        return out
    root = arch_dir(arch)
    root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f"{out.name}.partial-", dir=root))
    work = leftovers.owned_tempdir(_WORK_PREFIX)
    try:
        src = prepare_source(source, work, say)
        env = dict(os.environ, JOBS=str(jobs or os.cpu_count() or 2))
        _run_script(["lib", arch, str(src), str(work / "build"), str(partial)], env)
        (partial / "lite.json").write_text(json.dumps(
            {"tag": LITE_TAG, "commit": LITE_COMMIT, "arch": arch, "recipe": recipe(arch)}, indent=1))
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(partial, ignore_errors=True)


def _build_runtime(arch: str, lib: Path) -> Runtime:
    from .wheel import glibc_requirement, write_wheel

    out = runtime_dir(arch)
    partial = Path(tempfile.mkdtemp(prefix=f"{out.name}.partial-", dir=out.parent))
    try:
        folder = partial / RUNTIME_PACKAGE
        _run_script(["shim", arch, str(lib), str(SHIM_SOURCE), str(folder), LITE_TAG, LITE_COMMIT], dict(os.environ))
        shutil.copytree(lib / "include", folder / "include")
        shutil.copyfile(lib / "LICENSE.paddle-lite", folder / "LICENSE.paddle-lite")
        shutil.copyfile(PACKAGE_TEMPLATE, folder / "__init__.py")
        glibc = glibc_requirement(sorted(folder.glob("*.so*")))
        info = {"name": RUNTIME_DIST, "version": LITE_VERSION, "lite_tag": LITE_TAG, "lite_commit": LITE_COMMIT,
                "arch": arch, "machines": list(ARCHES[arch].uname), "glibc": glibc,
                "recipe": recipe(arch), "library": "libwherry_lite.so", "opencl": False,
                "built": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        (folder / "runtime.json").write_text(json.dumps(info, indent=1))
        wheel = write_wheel(folder, partial, RUNTIME_DIST, LITE_VERSION,
                            f"manylinux_{glibc.replace('.', '_')}_{ARCHES[arch].wheel_machine}")
        if out.exists():
            shutil.rmtree(out)
        partial.rename(out)
        return Runtime(arch, out / RUNTIME_PACKAGE, out / wheel.name, info)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def build(arch: str = "aarch64", source: Optional[str] = None, jobs: Optional[int] = None,
          say: Callable[[str], None] = lambda msg: print(f"build-lite: {msg}", file=sys.stderr, flush=True),
          install: bool = True) -> Runtime:
    """Build (or reuse) Paddle Lite's light runtime for ``arch``; see the module docstring. ``install``:
    apt-get install the missing build tools when running as root (else they are named in the error)."""
    _arch(arch)
    start = time.monotonic()
    found = find(arch)
    if found:
        return found
    need_lib = not library_built(arch)
    packages = installable_prerequisites(arch, need_lib) if install else []
    if packages:
        install_prerequisites(packages, say)
    missing = missing_prerequisites(arch, need_lib, source)
    if missing:
        raise BuildError("cannot build Paddle Lite's ARM runtime here:\n" + "\n".join(f"  - {m}" for m in missing),
                         "install what is listed (Debian/Ubuntu package names given), then run the command again")
    with _locked(arch_dir(arch).with_suffix(".lock"), say):
        found = find(arch)  # another process may have finished it while we waited
        if found:
            return found
        _sweep(arch)
        lib = _build_lib(arch, source, jobs, say)
        runtime = _build_runtime(arch, lib)
    runtime.built_now, runtime.seconds = True, time.monotonic() - start
    return runtime
