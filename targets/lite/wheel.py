"""Write the runtime folder as a wheel (a zip with dist-info, PEP 427) and read the glibc it needs.

The wheel holds no Python extension, only shared libraries loaded with ctypes, so its tag is
py3-none-<platform>: one wheel for every CPython 3 on the board.
"""
from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from pathlib import Path
from typing import List

_GLIBC = re.compile(rb"GLIBC_(\d+)\.(\d+)(?:\.\d+)?\x00")


def glibc_requirement(libraries: List[Path]) -> str:
    """The newest GLIBC_x.y symbol version the libraries reference (their minimum glibc)."""
    versions = {(int(m.group(1)), int(m.group(2))) for lib in libraries for m in _GLIBC.finditer(lib.read_bytes())}
    major, minor = max(versions) if versions else (2, 17)
    return f"{major}.{minor}"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(package: Path, out_dir: Path, dist: str, version: str, platform: str) -> Path:
    """Zip ``package`` (a folder importable as a package) into ``out_dir`` as a wheel."""
    name = dist.replace("-", "_")
    tag = f"py3-none-{platform}"
    wheel = out_dir / f"{name}-{version}-{tag}.whl"
    dist_info = f"{name}-{version}.dist-info"
    meta = {
        f"{dist_info}/METADATA": (f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n"
                                  "Summary: Paddle Lite light runtime for ARM Linux with a C interface for ctypes, "
                                  "built by wherry\nLicense: Apache-2.0\nRequires-Python: >=3.7\n"),
        f"{dist_info}/WHEEL": (f"Wheel-Version: 1.0\nGenerator: wherry\nRoot-Is-Purelib: false\nTag: {tag}\n"),
    }
    records = []
    with zipfile.ZipFile(wheel, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(p for p in package.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
            arcname = f"{package.name}/{path.relative_to(package).as_posix()}"
            data = path.read_bytes()
            info = zipfile.ZipInfo(arcname)
            info.external_attr = (0o755 if path.suffix == ".so" or ".so." in path.name else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
            records.append(f"{arcname},{_record_hash(data)},{len(data)}")
        for arcname, text in meta.items():
            data = text.encode()
            zf.writestr(arcname, data)
            records.append(f"{arcname},{_record_hash(data)},{len(data)}")
        records.append(f"{dist_info}/RECORD,,")
        zf.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    return wheel
