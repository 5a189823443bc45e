"""Content-addressed cache of zoo cells: one finished bundle (and its verdicts) per key.

A cell's key hashes everything its bundle depends on: the bytes of the model's files and of its
data files (inputs, images, calibration, evaluation), the options that change the result, the
target profile's file, the tool versions, wherry's own code and this host's verification
ability (machine, whether the ARM runtime is built here). Change any of them and the cell is
recomputed; change nothing and the bundle is copied back from the cache ("cached").
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import shutil
from functools import lru_cache
from pathlib import Path
from typing import Optional

from wherry.convert.options import path_options, preprocess_text
from wherry.runtimes import leftovers

from .spec import ModelEntry

log = logging.getLogger(__name__)

_PARTIAL = r"\.[0-9a-f]{12}\.tmp"   # an entry being written: .KEY12.tmp-HOST-PID-XXXX (leftovers.owned_tempdir)
KEY_VERSION = 1          # bump when the layout or the meaning of a key changes
CODE_PACKAGES = ("wherry.convert", "wherry.runtimes", "wherry.targets")


def default_dir() -> Path:
    from wherry.targets.cache import cache_root
    return cache_root() / "zoo"


def _hash_file(path: Path, digest) -> None:
    digest.update(path.name.encode() + b"\0")
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)


def _hash_tree(path: Path) -> str:
    digest = hashlib.sha256()
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(file.relative_to(path)).encode() + b"\0")
            _hash_file(file, digest)
    elif path.is_file():
        _hash_file(path, digest)
    return digest.hexdigest()


def model_files(model: str) -> list:
    """The files a model path stands for, conservatively: a directory's files, or every sibling
    sharing the model file's stem (inference.pdmodel + inference.pdiparams + inference.pdiparams.info)."""
    path = Path(model)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    stem = path.name.split(".")[0] if path.is_file() else path.name
    return sorted(p for p in path.parent.glob(stem + ".*") if p.is_file()) or ([path] if path.is_file() else [])


def model_hash(model: str) -> str:
    digest = hashlib.sha256()
    for file in model_files(model):
        _hash_file(file, digest)
    return digest.hexdigest()


@lru_cache(maxsize=None)
def tool_versions() -> tuple:
    from ..versions import tool_versions as versions
    return tuple(sorted(versions().items()))


@lru_cache(maxsize=None)
def code_hash() -> str:
    """wherry's own code: a changed pass or check invalidates results even at the same version number."""
    import importlib

    digest = hashlib.sha256()
    for name in CODE_PACKAGES:
        for root in importlib.import_module(name).__path__:
            for file in sorted(Path(root).rglob("*")):
                if file.suffix in (".py", ".json", ".toml", ".sh") and file.is_file():
                    digest.update(str(file.relative_to(root)).encode())
                    digest.update(file.read_bytes())
    return digest.hexdigest()


@lru_cache(maxsize=None)
def _profile_record(target: str) -> tuple:
    from wherry.targets import load_profile

    profile = load_profile(target)
    arm_runtime = None
    if profile.arch == "aarch64":  # with the ARM runtime built here, .nb files are checked on the emulated board
        from wherry.targets import lite
        found = lite.find("aarch64")
        arm_runtime = str(found) if found is not None else None
    text = Path(profile.path).read_bytes() if profile.path and Path(profile.path).is_file() else repr(profile).encode()
    return hashlib.sha256(text).hexdigest(), arm_runtime


def cell_key(entry: ModelEntry, target: str) -> str:
    from wherry import runtimes

    options = dict(entry.options)
    data_files = {key: _hash_tree(Path(str(options.pop(key)))) for key in path_options() if key in options}
    preprocess = options.get("preprocess")
    if isinstance(preprocess, str):
        options["preprocess"] = preprocess_text(preprocess)
    record = {"key_version": KEY_VERSION, "name": entry.name, "target": target, "model": model_hash(entry.path),
              "data": data_files, "options": options, "profile": _profile_record(target),
              "tools": tool_versions(), "wherry": runtimes.__version__, "code": code_hash(),
              "machine": platform.machine()}
    return hashlib.sha256(json.dumps(record, sort_keys=True, default=str).encode()).hexdigest()


class CellCache:
    """<dir>/<key[:2]>/<key>/{bundle/, cell.json}; entries appear atomically (rename of a finished folder)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _entry(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> Optional[dict]:
        entry = self._entry(key)
        try:
            record = json.loads((entry / "cell.json").read_text())
        except (OSError, ValueError):
            return None
        record["cache_bundle"] = str(entry / "bundle")
        return record if (entry / "bundle").is_dir() else None

    def put(self, key: str, bundle: Path, record: dict) -> None:
        """Store a finished bundle and its cell record; a cache that cannot be written only costs speed."""
        entry = self._entry(key)
        if entry.exists():
            return
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            # entries a killed run was writing in this shard (their process gone) go first
            leftovers.sweep(entry.parent, _PARTIAL, prefix_regex=True)
            stage = leftovers.owned_tempdir(f".{key[:12]}.tmp", entry.parent)
            _copy_tree(bundle, stage / "bundle")
            (stage / "cell.json").write_text(json.dumps(record, indent=1, default=str))
            try:
                os.rename(stage, entry)
            except OSError:  # another run stored it meanwhile
                shutil.rmtree(stage, ignore_errors=True)
        except OSError as exc:
            log.warning("zoo cache %s not written: %s", self.root, exc)


def _copy_tree(src: Path, dst: Path) -> None:
    # copies, not hard links: a user editing a bundle in -o must not alter the cached one
    shutil.copytree(src, dst)


def restore(cache_bundle: Path, final: Path) -> None:
    """Put a cached bundle at its place in -o, replacing the bundle there as a whole."""
    from ..publish import stage_dir
    stage = stage_dir(final)
    shutil.rmtree(stage)
    _copy_tree(Path(cache_bundle), stage)
    publish(stage, final)


def publish(stage: Path, final: Path) -> None:
    from ..publish import replace_bundle
    replace_bundle(stage, final)
