"""The bundle format (v1): a directory with manifest.json, artifacts and golden data.

This module is the single definition of the format. The converter builds a
``Manifest`` and calls ``Manifest.write``; devices call ``load_bundle``.
Layout::

    name.target/
      manifest.json        schema, source, tools, target, specs, artifacts
      model.x86.nb ...     artifacts (see Artifact)
      golden/inputs.npz    sample inputs
      golden/outputs.npz   outputs of the ORIGINAL fp32 model on those inputs
      report.json          conversion log (not needed to check a bundle)
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from .errors import BundleError
from .specs import TensorSpec

SCHEMA = "wherry.bundle/1"
MANIFEST = "manifest.json"
GOLDEN_INPUTS = "golden/inputs.npz"
GOLDEN_OUTPUTS = "golden/outputs.npz"
REPORT = "report.json"

# Artifact.format values and the runtime backend that runs each.
FORMAT_RUNTIME = {"onnx": "onnxruntime", "nb": "paddlelite", "paddle": "paddle"}
PRECISIONS = ("fp32", "fp16", "int8", "int8-weight", "int16-weight")
ARCHES = ("arm", "x86", "any")

# Paddle Lite writes a 16-byte version field after the leading uint16 of a .nb
# file, partly uninitialised memory: identical conversions differ there, so the
# content hash skips it.
_NB_VOLATILE = slice(2, 18)


def content_hash(path: os.PathLike) -> str:
    """sha256 of a file; for .nb files the volatile version field is zeroed first."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        head = bytearray(fh.read(1 << 20))
        if path.suffix == ".nb":
            head[_NB_VOLATILE] = bytes(len(head[_NB_VOLATILE]))
        digest.update(head)
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Tolerance:
    """Per-output pass criteria.

    ``rtol`` is relative to the golden output's own scale (max |golden|), so a
    tensor of logits ~10 and one of probabilities ~1e-3 are judged fairly:
    pass when max_abs_err <= atol + rtol * scale and cosine >= min_cosine.
    ``min_top1`` (fraction of rows whose argmax agrees) applies to outputs that
    look like class scores; ``None`` disables it.

    The rounding-noise rule (fp32 by default, see runtimes/parity.py): an error above
    ``rtol`` x scale but within ``noise_rtol`` x scale still passes when the error's energy is
    ``noise_min_snr_db`` or more below the signal's, i.e. it is spread like floating-point
    rounding, not concentrated like a wrong op. ``None`` disables the rule.
    """

    rtol: float = 1e-4
    atol: float = 0.0
    min_cosine: float = 0.9999
    min_top1: Optional[float] = None
    noise_rtol: Optional[float] = None
    noise_min_snr_db: Optional[float] = None
    match_iou: Optional[float] = None   # set: the output is a set of detections (see parity.compare_detections)

    @classmethod
    def from_json(cls, data: dict) -> "Tolerance":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass
class Artifact:
    file: str                 # path relative to the bundle
    format: str               # onnx | nb | paddle
    precision: str            # one of PRECISIONS
    arch: str                 # arm | x86 | any: where it can produce correct results
    size: int = 0
    sha256: str = ""          # content_hash()
    runtime: str = ""         # backend name; derived from format when empty
    places: Optional[str] = None          # Lite valid places used, e.g. "arm" or "x86"
    tolerance: Dict[str, Tolerance] = field(default_factory=dict)  # per output name
    notes: List[str] = field(default_factory=list)                # e.g. "int8 kernels: conv2d x12"

    def __post_init__(self):
        if not self.runtime:
            self.runtime = FORMAT_RUNTIME.get(self.format, self.format)

    def to_json(self) -> dict:
        data = asdict(self)
        data["tolerance"] = {k: asdict(v) for k, v in self.tolerance.items()}
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Artifact":
        data = dict(data)
        data["tolerance"] = {k: Tolerance.from_json(v) for k, v in (data.get("tolerance") or {}).items()}
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# NotBuilt.status values: a tool failed on the model, or the artifact format cannot express it.
FAILED_TO_BUILD, NOT_REPRESENTABLE = "failed to build", "not representable"


@dataclass
class NotBuilt:
    """An artifact the conversion was asked for but could not build: the other artifacts still ship,
    and this record says which tool failed, why, and what to do about it."""
    file: str                 # the name it would have had
    format: str
    precision: str
    arch: str
    tool: str                 # e.g. "Paddle Lite opt", "paddle2onnx", "ONNX Runtime quantization"
    reason: str               # one line
    hint: str = ""
    status: str = FAILED_TO_BUILD
    places: Optional[str] = None
    log: str = ""             # the tool's own words (last log lines), for the report

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "NotBuilt":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class Manifest:
    name: str
    inputs: List[TensorSpec]
    outputs: List[TensorSpec]
    artifacts: List[Artifact]
    source: dict = field(default_factory=dict)   # format, files [{name, sha256}], translated
    tools: dict = field(default_factory=dict)    # wherry, paddle, paddlelite, paddle2onnx, onnx_opset, onnxruntime
    target: dict = field(default_factory=dict)   # name, arch, os
    golden: dict = field(default_factory=dict)   # inputs, outputs, origin (user|random|images), seed
    preprocess: Optional[dict] = None             # how real images became inputs, for devices to repeat
    not_built: List[NotBuilt] = field(default_factory=list)  # requested artifacts that could not be built
    schema: str = SCHEMA
    created: str = ""

    def artifact(self, file: str) -> Artifact:
        for art in self.artifacts:
            if art.file == file or Path(art.file).name == file:
                return art
        for missing in self.not_built:
            if missing.file == file:
                raise BundleError(f"artifact {file} was not built ({missing.tool}: {missing.reason.splitlines()[0]})",
                                  missing.hint or "see report.json of the bundle")
        names = ", ".join(a.file for a in self.artifacts)
        raise BundleError(f"bundle has no artifact {file!r}", f"choose one of: {names}")

    def to_json(self) -> dict:
        return {
            "schema": self.schema,
            "created": self.created,
            "name": self.name,
            "source": self.source,
            "tools": self.tools,
            "target": self.target,
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
            "golden": self.golden,
            "preprocess": self.preprocess,
            "artifacts": [a.to_json() for a in self.artifacts],
            "not_built": [n.to_json() for n in self.not_built],
        }

    def write(self, bundle_dir: os.PathLike) -> Path:
        path = Path(bundle_dir) / MANIFEST
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @classmethod
    def from_json(cls, data: dict) -> "Manifest":
        schema = data.get("schema")
        if schema != SCHEMA:
            raise BundleError(
                f"manifest schema {schema!r} is not supported (this wherry reads {SCHEMA!r})",
                "convert the model again with this wherry version, or upgrade wherry on this device",
            )
        try:
            return cls(
                name=data["name"],
                inputs=[TensorSpec.from_json(s) for s in data["inputs"]],
                outputs=[TensorSpec.from_json(s) for s in data["outputs"]],
                artifacts=[Artifact.from_json(a) for a in data["artifacts"]],
                source=data.get("source") or {},
                tools=data.get("tools") or {},
                target=data.get("target") or {},
                golden=data.get("golden") or {},
                preprocess=data.get("preprocess"),
                not_built=[NotBuilt.from_json(n) for n in data.get("not_built") or []],
                created=data.get("created", ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"manifest is malformed: {exc!r}",
                              "the bundle was damaged; convert the model again") from None


@dataclass
class Bundle:
    root: Path
    manifest: Manifest

    def path(self, artifact: Artifact) -> Path:
        return self.root / artifact.file

    def verify_artifact(self, artifact: Artifact) -> None:
        """Raise BundleError if the artifact file is missing or its content changed."""
        path = self.path(artifact)
        if not path.is_file():
            raise BundleError(f"artifact {artifact.file} is missing from bundle {self.root}",
                              "copy the whole bundle directory to the device")
        if artifact.sha256 and content_hash(path) != artifact.sha256:
            raise BundleError(f"artifact {artifact.file} does not match its manifest hash (tampered or corrupted)",
                              "copy the bundle again or convert the model again")


def is_bundle(path: os.PathLike) -> bool:
    return (Path(path) / MANIFEST).is_file()


def load_bundle(path: os.PathLike) -> Bundle:
    root = Path(path)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{root} is not a wherry bundle (no {MANIFEST})",
                          "pass the directory that `wherry convert` wrote")
    try:
        data = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {manifest_path}: {exc}", "convert the model again") from None
    if not isinstance(data, dict):
        raise BundleError(f"{manifest_path} is not a JSON object", "convert the model again")
    return Bundle(root, Manifest.from_json(data))
