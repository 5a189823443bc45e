"""The bundle format (v2): a directory with manifest.json, artifacts and golden data.

This module is the single definition of the format. The converter builds a
``Manifest`` and calls ``Manifest.write``; devices call ``load_bundle``.
Layout::

    name.target/
      manifest.json        schema, source, tools, target, specs, artifacts
      model.x86.nb ...     artifacts (see Artifact)
      golden/inputs.npz    sample inputs
      golden/outputs.npz   outputs of the ORIGINAL fp32 model on those inputs
      golden/inputs.1.npz  (optional) the same at other input shapes, for models with dynamic
      golden/outputs.1.npz dimensions: listed in ``golden.other_shapes`` (each with its files' hashes
                           and the shapes), every artifact is checked at every one of them
      report.json          conversion log (not needed to check a bundle)

A bundle may come from anywhere (the HTTP runner accepts uploads), so ``load_bundle`` checks the
manifest against one schema (``_validate``) and every file it names must resolve inside the bundle.
Every file a check reads carries a sha256 in the manifest: artifacts in ``artifacts[].sha256``,
golden data in ``golden.inputs_sha256`` / ``golden.outputs_sha256`` (new in v2). Bundles of v1
have no hash of their golden data and are refused with a hint to convert again.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from .errors import BundleError
from . import vocabulary
from .specs import TensorSpec

SCHEMA = "wherry.bundle/2"
MANIFEST = "manifest.json"
GOLDEN_INPUTS = "golden/inputs.npz"
GOLDEN_OUTPUTS = "golden/outputs.npz"
REPORT = "report.json"

# Artifact.format values and the runtime backend that runs each; precisions; CPU families (the vocabulary's)
FORMAT_RUNTIME = vocabulary.FORMAT_RUNTIME
PRECISIONS = tuple(vocabulary.PRECISIONS)
ARCHES = vocabulary.ARCH_FAMILIES
# Artifact.format of a file, by its suffix (an OpenVINO IR is named by its .xml; its weights are the .bin beside it)
SUFFIX_FORMAT = {f.suffix: name for name, f in vocabulary.FORMATS.items() if f.artifact}

# Paddle Lite writes a 16-byte version field after the leading uint16 of a .nb
# file, partly uninitialised memory: identical conversions differ there, so the
# content hash skips it.
_NB_VOLATILE = slice(2, 18)


def companions(path: Union[str, os.PathLike[str]]) -> List[Path]:
    """The files an artifact is made of besides itself: an OpenVINO IR's weights (model.xml -> model.bin)."""
    path = Path(path)
    return [path.with_suffix(".bin")] if path.suffix == ".xml" else []


def content_hash(path: Union[str, os.PathLike[str]]) -> str:
    """sha256 of a file and its companions (an IR's .bin, so the hash covers the weights too); for .nb
    files the volatile version field is zeroed first."""
    path = Path(path)
    digest = hashlib.sha256()
    for index, part in enumerate([path] + companions(path)):
        if index:
            digest.update(b"\0" + part.name.encode() + b"\0")
        with open(part, "rb") as fh:
            head = bytearray(fh.read(1 << 20))
            if part.suffix == ".nb":
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
    def from_json(cls, data: Mapping[str, Any]) -> "Tolerance":
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

    def __post_init__(self) -> None:
        if not self.runtime:
            self.runtime = FORMAT_RUNTIME.get(self.format, self.format)

    def to_json(self) -> Dict[str, Any]:
        data = asdict(self)
        data["tolerance"] = {k: asdict(v) for k, v in self.tolerance.items()}
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Artifact":
        data = dict(data)
        data["tolerance"] = {k: Tolerance.from_json(v) for k, v in (data.get("tolerance") or {}).items()}
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


# NotBuilt.status values: a tool failed on the model, or the artifact format cannot express it.
FAILED_TO_BUILD, NOT_REPRESENTABLE = "failed to build", vocabulary.Verdict.NOT_REPRESENTABLE


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

    def to_json(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "NotBuilt":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class Manifest:
    name: str
    inputs: List[TensorSpec]
    outputs: List[TensorSpec]
    artifacts: List[Artifact]
    source: Dict[str, Any] = field(default_factory=dict)   # format, path, files [{name, sha256}], translated
    tools: Dict[str, Any] = field(default_factory=dict)    # wherry, paddle, paddlelite, paddle2onnx, onnx_opset, onnxruntime
    target: Dict[str, Any] = field(default_factory=dict)   # name, arch, os
    golden: Dict[str, Any] = field(default_factory=dict)   # inputs, outputs, origin (user|random|images), seed, paddle
    preprocess: Optional[Dict[str, Any]] = None            # how real images became inputs, for devices to repeat
    # the program that fed the exporters (legalized legacy ProgramDesc + params), kept for `wherry debug`:
    # model, model_sha256, params, params_sha256; None when the conversion did not keep it
    program: Optional[Dict[str, Any]] = None
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

    def to_json(self) -> Dict[str, Any]:
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
            "program": self.program,
            "artifacts": [a.to_json() for a in self.artifacts],
            "not_built": [n.to_json() for n in self.not_built],
        }

    def golden_sets(self) -> List[Dict[str, Any]]:
        """Every golden set: the main one (``golden`` itself) first, then ``golden.other_shapes``; each a dict
        with inputs, outputs and their hashes (and ``shapes`` for the others)."""
        return [self.golden, *self.golden.get("other_shapes", [])]

    def write(self, bundle_dir: Union[str, os.PathLike[str]]) -> Path:
        """Write manifest.json, recording the hashes of the golden files already in ``bundle_dir``."""
        for key, default in (("inputs", GOLDEN_INPUTS), ("outputs", GOLDEN_OUTPUTS)):
            self.golden.setdefault(key, default)
        for golden_set in self.golden_sets():
            for key in ("inputs", "outputs"):
                golden_set[f"{key}_sha256"] = content_hash(Path(bundle_dir) / golden_set[key])
        path = Path(bundle_dir) / MANIFEST
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path

    @classmethod
    def from_json(cls, data: object) -> "Manifest":
        """From manifest.json as parsed (anything JSON holds): validated first (BundleError if malformed)."""
        _validate(data)
        assert isinstance(data, dict)   # _validate refuses anything else
        return cls(
            name=data["name"],
            inputs=[TensorSpec.from_json(s) for s in data["inputs"]],
            outputs=[TensorSpec.from_json(s) for s in data["outputs"]],
            artifacts=[Artifact.from_json(a) for a in data["artifacts"]],
            source=data.get("source") or {},
            tools=data.get("tools") or {},
            target=data.get("target") or {},
            golden=data["golden"],
            preprocess=data.get("preprocess"),
            program=data.get("program"),
            not_built=[NotBuilt.from_json(n) for n in data.get("not_built") or []],
            created=data.get("created", ""),
        )


# ----------------------------------------------------------------------------- the manifest's schema

MAX_MANIFEST_BYTES = 1 << 20
_MAX_DEPTH = 32
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NUMERIC_DTYPES = "biuf"


class _Malformed(Exception):
    pass


def _expect(ok: bool, where: str, what: str) -> None:
    if not ok:
        raise _Malformed(f"{where} {what}")


_Kinds = Union[type, Tuple[type, ...]]


def _field(obj: Dict[str, Any], key: str, kinds: _Kinds, where: str, required: bool = True) -> Any:
    """``obj[key]``, refused unless an instance of ``kinds`` (None when absent and not ``required``)."""
    if key not in obj:
        _expect(not required, f"{where}.{key}", "is missing")
        return None
    value = obj[key]
    _expect(isinstance(value, kinds) and not (isinstance(value, bool) and bool not in _tuple(kinds)),
            f"{where}.{key}", f"must be {' or '.join(k.__name__ for k in _tuple(kinds))}, not {type(value).__name__}")
    return value


def _tuple(kinds: _Kinds) -> Tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


def _walk(value: object, where: str, depth: int = 0) -> None:
    """Limits every manifest obeys whatever its fields: nesting depth and text that is valid UTF-8."""
    _expect(depth <= _MAX_DEPTH, where, f"nests deeper than {_MAX_DEPTH} levels")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise _Malformed(f"{where} holds text that is not valid UTF-8") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _walk(key, where, depth + 1)
            _walk(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _walk(item, f"{where}[{i}]", depth + 1)


def _check_program(program: Dict[str, Any], where: str) -> None:
    """A kept program's record: its model and params files, relative to the bundle, with their sha256."""
    for key in ("model", "params"):
        _relative_file(program, key, where)
        digest = _field(program, f"{key}_sha256", str, where)
        _expect(bool(_SHA256.fullmatch(digest)), f"{where}.{key}_sha256", "must be 64 hex digits")


def _relative_file(obj: Dict[str, Any], key: str, where: str) -> str:
    """A file name relative to the bundle: no absolute paths, no .., no backslashes (see Bundle.file)."""
    value: str = _field(obj, key, str, where)
    parts = PurePosixPath(value).parts
    _expect(bool(value) and "\\" not in value and "\0" not in value and not PurePosixPath(value).is_absolute()
            and ".." not in parts, f"{where}.{key}", f"{value!r} is not a file name inside the bundle")
    return value


def _number(obj: Dict[str, Any], key: str, where: str, required: bool = False, signed: bool = False) -> None:
    value = _field(obj, key, (int, float), where, required)
    _expect(value is None or (math.isfinite(value) and (signed or value >= 0)), f"{where}.{key}",
            f"must be a finite number{'' if signed else ' >= 0'}, not {value!r}")


def _spec(obj: object, where: str) -> None:
    if not isinstance(obj, dict):
        raise _Malformed(f"{where} must be an object")
    _field(obj, "name", str, where)
    dtype = _field(obj, "dtype", str, where)
    try:
        import numpy as np

        ok = np.dtype(dtype).kind in _NUMERIC_DTYPES
    except (TypeError, ValueError, SyntaxError):
        ok = False
    _expect(ok, f"{where}.dtype", f"{dtype!r} is not a numeric dtype")
    shape = _field(obj, "shape", list, where)
    _expect(len(shape) <= 64 and all(d is None or (type(d) is int and -1 <= d < 2 ** 62) for d in shape),
            f"{where}.shape", "must be a list of sizes (null or -1 for a free one)")


def _artifact(obj: object, where: str) -> None:
    if not isinstance(obj, dict):
        raise _Malformed(f"{where} must be an object")
    _relative_file(obj, "file", where)
    fmt = _field(obj, "format", str, where)
    _expect(fmt in FORMAT_RUNTIME, f"{where}.format", f"{fmt!r} is not one of {', '.join(FORMAT_RUNTIME)}")
    for key, allowed in (("precision", PRECISIONS), ("arch", ARCHES)):
        value = _field(obj, key, str, where)
        _expect(value in allowed, f"{where}.{key}", f"{value!r} is not one of {', '.join(allowed)}")
    runtime = _field(obj, "runtime", str, where, required=False)
    _expect(runtime in (None, "", FORMAT_RUNTIME[fmt]), f"{where}.runtime",
            f"{runtime!r} does not run {fmt} artifacts (that is {FORMAT_RUNTIME[fmt]})")
    size = _field(obj, "size", int, where, required=False)
    _expect(size is None or size >= 0, f"{where}.size", "must be >= 0")
    digest = _field(obj, "sha256", str, where)
    _expect(bool(_SHA256.fullmatch(digest)), f"{where}.sha256", "must be 64 hex digits")
    _field(obj, "places", (str, type(None)), where, required=False)
    notes = _field(obj, "notes", list, where, required=False) or []
    _expect(all(isinstance(n, str) for n in notes), f"{where}.notes", "must be a list of text")
    for name, tol in (_field(obj, "tolerance", dict, where, required=False) or {}).items():
        inner = f"{where}.tolerance.{name}"
        _expect(isinstance(tol, dict), inner, "must be an object")
        for key in ("rtol", "atol", "min_cosine"):
            _number(tol, key, inner)
        for key in ("min_top1", "noise_rtol", "noise_min_snr_db", "match_iou"):
            if tol.get(key) is not None:
                _number(tol, key, inner, signed=key == "noise_min_snr_db")


def _validate(data: object) -> None:
    """Check a parsed manifest against the schema; raise BundleError naming the first bad field."""
    try:
        if not isinstance(data, dict):
            raise _Malformed("manifest.json must hold a JSON object")
        schema = data.get("schema")
        if schema != SCHEMA:
            old = schema == "wherry.bundle/1"
            raise BundleError(
                f"manifest schema {schema!r} is not supported (this wherry reads {SCHEMA!r})"
                if isinstance(schema, str) and not old else
                ("this bundle was made by an older wherry (wherry.bundle/1), whose golden data carries no hash"
                 if old else "manifest.json names no schema this wherry reads"),
                "convert the model again with this wherry version" if old else
                "convert the model again with this wherry version, or upgrade wherry on this device")
        _walk(data, "manifest")
        _field(data, "name", str, "manifest")
        _field(data, "created", str, "manifest", required=False)
        for key in ("source", "tools", "target"):
            _field(data, key, dict, "manifest", required=False)
        _field(data, "preprocess", (dict, type(None)), "manifest", required=False)
        program = _field(data, "program", (dict, type(None)), "manifest", required=False)
        if program is not None:
            _check_program(program, "manifest.program")
            quantized = _field(program, "quantized", dict, "manifest.program", required=False) or {}
            for file, kept in quantized.items():
                _expect(isinstance(kept, dict), f"manifest.program.quantized.{file}", "must be an object")
                _check_program(kept, f"manifest.program.quantized.{file}")
        for key in ("inputs", "outputs"):
            specs = _field(data, key, list, "manifest")
            _expect(bool(specs), f"manifest.{key}", "is empty")
            for i, spec in enumerate(specs):
                _spec(spec, f"manifest.{key}[{i}]")
        artifacts = _field(data, "artifacts", list, "manifest")
        not_built = _field(data, "not_built", list, "manifest", required=False) or []
        _expect(bool(artifacts or not_built), "manifest.artifacts", "is empty")
        for i, art in enumerate(artifacts):
            _artifact(art, f"manifest.artifacts[{i}]")
        for i, missing in enumerate(not_built):  # records only: nothing here is read from disk
            _expect(isinstance(missing, dict), f"manifest.not_built[{i}]", "must be an object")
            for key in ("file", "format", "precision", "arch", "tool", "reason"):
                _field(missing, key, str, f"manifest.not_built[{i}]")
            for key in ("hint", "status", "log"):
                _field(missing, key, str, f"manifest.not_built[{i}]", required=False)
            _field(missing, "places", (str, type(None)), f"manifest.not_built[{i}]", required=False)
        golden = _field(data, "golden", dict, "manifest")
        _number(golden, "seconds", "manifest.golden")   # the golden run's time: check's default time limit
        others = _field(golden, "other_shapes", list, "manifest.golden", required=False) or []
        for where, golden_set in [("manifest.golden", golden),
                                  *((f"manifest.golden.other_shapes[{i}]", g) for i, g in enumerate(others))]:
            _expect(isinstance(golden_set, dict), where, "must be an object")
            for key in ("inputs", "outputs"):
                _relative_file(golden_set, key, where)
                digest = _field(golden_set, f"{key}_sha256", str, where)
                _expect(bool(_SHA256.fullmatch(digest)), f"{where}.{key}_sha256", "must be 64 hex digits")
            if golden_set is not golden:
                _field(golden_set, "shapes", dict, where)
    except _Malformed as exc:
        raise BundleError(f"manifest.json is malformed: {exc}", "the bundle was damaged; convert the model again") \
            from None


@dataclass
class Bundle:
    root: Path
    manifest: Manifest
    # (file, sha256) -> the file's stat stamp when its content last matched: a check verifies each file
    # once, not once per step that opens it (hashing a 20 MB artifact costs ~0.5 s on an emulated board)
    _verified: Dict[Tuple[str, str], Tuple[int, int, int, int, int]] = field(default_factory=dict, repr=False,
                                                                             compare=False)

    def file(self, relative: str) -> Path:
        """A file the manifest names; refused unless it resolves inside the bundle (symlinks followed).

        The message is the same whether or not the outside path exists, so it tells nothing about
        the machine's files."""
        root = self.root.resolve()
        try:
            path = (root / relative).resolve()
        except (RuntimeError, OSError):   # a symlink loop (RuntimeError before Python 3.13), a name too long
            # the same message as for a path outside: replies tell nothing about what is out there
            raise BundleError(f"the manifest names {relative!r}, which is not a file inside the bundle",
                              "a bundle must hold its own files; convert the model again") from None
        if root not in path.parents:
            raise BundleError(f"the manifest names {relative!r}, which is not a file inside the bundle",
                              "a bundle must hold its own files; convert the model again")
        return path

    def path(self, artifact: Artifact) -> Path:
        return self.file(artifact.file)

    def verify_artifact(self, artifact: Artifact) -> None:
        """Raise BundleError if the artifact file is outside the bundle, missing or its content changed."""
        self._verify(artifact.file, artifact.sha256, f"artifact {artifact.file}")

    def golden_file(self, key: str, golden_set: Optional[Dict[str, Any]] = None) -> Path:
        """golden inputs or outputs ("inputs" | "outputs") of a golden set (the main one by default),
        checked against their hash."""
        golden_set = self.manifest.golden if golden_set is None else golden_set
        relative = golden_set[key]
        return self._verify(relative, golden_set[f"{key}_sha256"], relative)

    def program_files(self, quantized: Optional[str] = None) -> Optional[Tuple[Path, Path]]:
        """(model, params) of the program the bundle keeps for `wherry debug`, checked against their hashes;
        None when the conversion kept none. ``quantized``: an int8 .nb's file name, for the quantized program
        opt built it from instead (kept beside the float one)."""
        program = self.manifest.program
        if program and quantized is not None:
            program = (program.get("quantized") or {}).get(quantized)
        if not program:
            return None
        model, params = (self._verify(program[key], program[f"{key}_sha256"], f"kept program file {program[key]}")
                         for key in ("model", "params"))
        return model, params

    def _verify(self, relative: str, sha256: str, label: str) -> Path:
        path = self.file(relative)
        try:
            info = path.stat() if path.is_file() else None
        except OSError:                   # e.g. a file name longer than the file system allows
            info = None
        missing = [p for p in companions(path) if not self.file(str(PurePosixPath(relative).parent / p.name))
                   .is_file()]
        if info is None or missing:
            what = label if info is None else f"{missing[0].name} (part of {label})"
            raise BundleError(f"{what} is missing from bundle {self.root}",
                              "copy the whole bundle directory to the device")
        stamp = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)
        if self._verified.get((relative, sha256)) == stamp:
            return path
        if content_hash(path) != sha256:
            raise BundleError(f"{label} does not match its manifest hash (tampered or corrupted)",
                              "copy the bundle again or convert the model again")
        self._verified[(relative, sha256)] = stamp
        return path


def is_bundle(path: Union[str, os.PathLike[str]]) -> bool:
    return (Path(path) / MANIFEST).is_file()


def load_bundle(path: Union[str, os.PathLike[str]]) -> Bundle:
    root = Path(path)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise BundleError(f"{root} is not a wherry bundle (no {MANIFEST})",
                          "pass the directory that `wherry convert` wrote")
    try:
        if manifest_path.stat().st_size > MAX_MANIFEST_BYTES:
            raise BundleError(f"{manifest_path} is larger than {MAX_MANIFEST_BYTES >> 20} MiB; no manifest is",
                              "the bundle was damaged; convert the model again")
        data = json.loads(manifest_path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise BundleError(f"cannot read {manifest_path}: {reason}", "convert the model again") from None
    return Bundle(root, Manifest.from_json(data))
