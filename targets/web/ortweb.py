"""The onnxruntime-web package: pinned here, fetched from the npm registry on first use into the
user cache (``~/.cache/wherry/web``; WHERRY_CACHE overrides), like the emulated board."""
from __future__ import annotations

import fcntl
import logging
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from wherry.runtimes.errors import WherryError

log = logging.getLogger(__name__)

VERSION = "1.30.0"
PACKAGE = "onnxruntime-web"

# What the pages load (all from the package's dist/, served from 127.0.0.1: no CDN):
# the WebAssembly-only build, and the WebGPU build whose backend is correct on int8 QDQ (the older
# JSEP WebGPU backend inside ort.all/ort.min returned wrong numbers without an error; docs/web.md)
BUILDS = {"wasm": "ort.wasm.min.mjs", "webgpu": "ort.webgpu.min.mjs", "webgpu-jsep": "ort.all.min.mjs"}


class WebSetupError(WherryError):
    """A prerequisite of the browser device is missing."""


def cache_root() -> Path:
    from ..cache import cache_root as user_cache   # the one user-level cache of wherry (WHERRY_CACHE, XDG)

    return user_cache() / "web"


def package_dir() -> Path:
    """The unpacked package (``dist/``, ``docs/``, ``package.json``), fetched first if needed."""
    root = cache_root()
    target = root / f"{PACKAGE}-{VERSION}"
    if (target / "package.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "package.json").is_file():
            return target
        _fetch(target)
    return target


def _fetch(target: Path) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise WebSetupError(f"the browser device needs {PACKAGE} {VERSION} from the npm registry, and npm is not "
                            "installed", "install Node.js and npm (Debian: apt-get install npm), or unpack "
                            f"`npm pack {PACKAGE}@{VERSION}` into {target}")
    _progress(f"setting up {PACKAGE} {VERSION} from the npm registry (first use only, ~33 MB) into {target}")
    with tempfile.TemporaryDirectory(prefix="wherry-ortweb-", dir=target.parent) as tmp:
        # `npm pack` fetches the registry tarball and checks it against the registry's integrity hash
        proc = subprocess.run([npm, "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", tmp, "--silent"],
                              capture_output=True, text=True, cwd=tmp, timeout=900)
        tarballs = list(Path(tmp).glob("*.tgz"))
        if proc.returncode != 0 or not tarballs:
            detail = (proc.stderr.strip() or proc.stdout.strip())[-600:]
            raise WebSetupError(f"npm could not fetch {PACKAGE}@{VERSION}: {detail}",
                                "check the network access to registry.npmjs.org (npm config get registry)")
        _progress(f"unpacking {tarballs[0].name}")
        unpacked = Path(tmp) / "unpacked"
        with tarfile.open(tarballs[0]) as archive:
            members = [m for m in archive.getmembers() if m.isfile() and m.name.startswith("package/")
                       and not m.name.endswith(".map")]
            if sys.version_info >= (3, 12):
                archive.extractall(unpacked, members=members, filter="data")
            else:
                for member in members:
                    if ".." in Path(member.name).parts or member.name.startswith("/"):
                        raise WebSetupError(f"refusing a path in the {PACKAGE} tarball: {member.name}")
                archive.extractall(unpacked, members=members)
        missing = [name for name in BUILDS.values() if not (unpacked / "package" / "dist" / name).is_file()]
        if missing:
            raise WebSetupError(f"{PACKAGE} {VERSION} lacks {', '.join(missing)}", "report this to wherry")
        shutil.rmtree(target, ignore_errors=True)
        (unpacked / "package").rename(target)
    _progress(f"{PACKAGE} {VERSION} ready")


def _progress(message: str) -> None:
    print(f"wherry web: {message}", file=sys.stderr, flush=True)
