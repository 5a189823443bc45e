"""Target profiles: one TOML data file per device class, validated on load."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

from wherry.runtimes.errors import WherryError
from wherry.runtimes.vocabulary import ARTIFACT_FORMATS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on the 3.10 host
    import tomli as tomllib

PROFILE_DIR = Path(__file__).parent / "profiles"
# wasm32: a browser's WebAssembly; its artifacts (ONNX only) carry no CPU arch tag
ARCH_FAMILY = {"x86_64": "x86", "aarch64": "arm", "armv7": "arm", "wasm32": "any"}
KNOWN_ARTIFACTS = ARTIFACT_FORMATS   # the artifact formats of the vocabulary


class ProfileError(WherryError):
    """A target profile is unknown or invalid."""


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    arch: str                      # x86_64 | aarch64 | armv7 | wasm32
    os: str
    artifacts: List[str]           # subset of KNOWN_ARTIFACTS
    lite_places: List[str]         # Paddle Lite valid places, e.g. ["arm"], ["arm", "opencl"], ["x86"]
    onnx_opset: int = 13
    precisions: List[str] = field(default_factory=lambda: ["fp32"])
    threads: int = 1
    tolerances: Dict[str, dict] = field(default_factory=dict)  # precision -> Tolerance fields
    npu_platform: str = ""         # the Rockchip NPU an .rknn is built for (rk3588, rk3576, rk3568, rk3566, rv1106)
    path: str = ""

    @property
    def arch_family(self) -> str:
        """The artifact arch tag (see runtimes.bundle.ARCHES) this target's CPU runs."""
        return ARCH_FAMILY[self.arch]


_REQUIRED = ("name", "description", "arch", "os", "artifacts", "lite_places")


def _validate(data: dict, where: str) -> Profile:
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ProfileError(f"target profile {where} lacks {', '.join(missing)}",
                           "see `wherry targets show rpi4` for a complete example")
    if data["arch"] not in ARCH_FAMILY:
        raise ProfileError(f"target profile {where}: arch {data['arch']!r} is not one of {', '.join(ARCH_FAMILY)}")
    bad = [a for a in data["artifacts"] if a not in KNOWN_ARTIFACTS]
    if bad or not data["artifacts"]:
        raise ProfileError(f"target profile {where}: artifacts must be a non-empty subset of {list(KNOWN_ARTIFACTS)}")
    if "rknn" in data["artifacts"] and not data.get("npu_platform"):
        raise ProfileError(f"target profile {where}: an rknn artifact needs npu_platform (e.g. \"rk3588\")")
    known = set(Profile.__dataclass_fields__) - {"path"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ProfileError(f"target profile {where}: unknown keys {', '.join(unknown)}")
    try:
        return Profile(**data, path=where)
    except TypeError as exc:
        raise ProfileError(f"target profile {where} is invalid: {exc}") from None


def list_profiles() -> List[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def load_profile(name_or_path: str) -> Profile:
    """A built-in profile by name, or a user's profile file by path."""
    path = Path(name_or_path)
    if path.suffix != ".toml" or not path.is_file():
        path = PROFILE_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise ProfileError(f"unknown target {name_or_path!r}",
                               f"choose one of {', '.join(list_profiles())} or pass a profile file (.toml)")
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ProfileError(f"cannot read target profile {path}: {exc}") from None
    return _validate(data, str(path))
