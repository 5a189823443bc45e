"""``runtimes.open``: resolve what a path is, enforce where it may run, and wrap a backend
in a ``Session`` that validates feeds before they reach native code."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from . import backends, device
from .bundle import FORMAT_RUNTIME, SUFFIX_FORMAT, Artifact, Bundle, is_bundle, load_bundle
from .errors import ArchMismatch, BackendUnavailable, BundleError, InputError, SessionClosed
from .npz import validate_feeds
from .specs import TensorSpec

log = logging.getLogger(__name__)

_PADDLE_SUFFIXES = (".pdmodel", ".json")


@dataclass
class Target:
    """What ``open`` decided to load."""

    path: str
    backend: str
    arch: str                                  # arm | x86 | any
    label: str                                 # for messages: the artifact's file name
    inputs: Optional[List[TensorSpec]] = None  # from the manifest, when there is one
    outputs: Optional[List[TensorSpec]] = None
    artifact: Optional[Artifact] = None


def nb_arch_from_name(path: str) -> str:
    """'arm' / 'x86' from wherry's .nb naming (model.arm.nb, model.arm-opencl.nb, model.x86.nb), else 'any'."""
    parts = Path(path).name.lower().split(".")
    for part in parts[1:-1]:
        family = part.split("-")[0]
        if family in ("arm", "x86"):
            return family
    return "any"


def unsupported_reason(arch: str, backend: str) -> Optional[str]:
    """Why an artifact for ``arch`` run by ``backend`` cannot run on this device, or None."""
    here = device.arch_family()
    if arch in ("arm", "x86") and here in ("arm", "x86") and arch != here:
        kind = ".nb" if backend == "paddlelite" else "artifact"
        return f"{arch} {kind} on {device.display_machine()}"
    if backends.version(backend) is None:
        if backend == "paddlelite":
            return "no Paddle Lite runtime on this device"
        return f"backend {backend} not installed"
    return None


def _check_arch(target: Target) -> None:
    here = device.arch_family()
    if target.arch in ("arm", "x86") and here in ("arm", "x86") and target.arch != here:
        other = "an x86" if target.arch == "x86" else "an ARM"
        why = ("an ARM .nb loaded by the x86 Paddle Lite runtime runs and silently returns garbage"
               if target.arch == "arm" else "x86 kernels cannot run on this CPU")
        raise ArchMismatch(f"{target.label} is {other} artifact; this device is {device.display_machine()}: {why}",
                           f"run it on a {target.arch} device, or use an artifact built for {here} "
                           f"(model.{here}.nb or model.onnx)")


def _pick_artifact(bundle: Bundle, artifact: Optional[str], backend: Optional[str]) -> Artifact:
    if artifact:
        return bundle.manifest.artifact(artifact)
    arts = [a for a in bundle.manifest.artifacts if backend is None or a.runtime == backend]
    if not arts:
        raise BundleError(f"bundle {bundle.root} has no artifact for backend {backend}",
                          "choose one of: " + ", ".join(a.file for a in bundle.manifest.artifacts))
    for art in arts:
        if unsupported_reason(art.arch, art.runtime) is None:
            log.info("opening %s (first artifact of %s runnable here)", art.file, bundle.root)
            return art
    return arts[0]  # not runnable: _check_arch / backends.require explain why


def resolve(path, artifact: Optional[str] = None, backend: Optional[str] = None) -> Target:
    """``path``: a bundle directory, an artifact or a Paddle model, or a Bundle already loaded (the
    checker's: its integrity checks are reused)."""
    if backend is not None and backend not in backends.NAMES:
        raise BackendUnavailable(f"unknown backend {backend!r}", f"choose one of {', '.join(backends.NAMES)}")
    loaded = path if isinstance(path, Bundle) else None
    path = loaded.root if loaded is not None else Path(path)
    if loaded is not None or (path.is_dir() and is_bundle(path)):
        bundle = loaded or load_bundle(path)
        art = _pick_artifact(bundle, artifact, backend)
        bundle.verify_artifact(art)
        return Target(str(bundle.path(art)), backend or art.runtime, art.arch, art.file,
                      bundle.manifest.inputs, bundle.manifest.outputs, art)
    if artifact:
        raise InputError(f"artifact={artifact!r} only applies to a bundle directory, and {path} is not one",
                         "pass the bundle directory, or the artifact file alone")
    if path.suffix in SUFFIX_FORMAT:
        if not path.is_file():
            raise BundleError(f"{path} does not exist", "check the path of the artifact")
        kind = FORMAT_RUNTIME[SUFFIX_FORMAT[path.suffix]]
        target = Target(str(path), backend or kind, "any", path.name)
        if path.suffix == ".nb":
            target.arch = nb_arch_from_name(str(path))
        # An artifact inside a bundle gets the manifest's arch, hash check and specs.
        if is_bundle(path.parent):
            bundle = load_bundle(path.parent)
            match = [a for a in bundle.manifest.artifacts if Path(a.file).name == path.name]
            if match:
                bundle.verify_artifact(match[0])
                target.arch, target.artifact = match[0].arch, match[0]
                target.inputs, target.outputs = bundle.manifest.inputs, bundle.manifest.outputs
        return target
    if path.name == "__model__" or path.suffix in _PADDLE_SUFFIXES or path.is_dir() or \
            any(path.with_name(path.name + s).is_file() for s in _PADDLE_SUFFIXES):
        return Target(str(path), backend or "paddle", "any", path.name)
    if not path.exists():
        raise BundleError(f"{path} does not exist", "pass a bundle directory, an .onnx or .nb file, or a Paddle model")
    raise BundleError(f"cannot tell what {path} is",
                      "pass a bundle directory, an .onnx file, a Paddle Lite .nb file, an OpenVINO .xml, or a Paddle model "
                      "(.pdmodel/.json + .pdiparams, or a 1.x directory with __model__)")


class Session:
    """One loaded model. ``run`` validates feeds, then calls the backend."""

    def __init__(self, impl, target: Target, isolated: bool = False):
        self._impl = impl
        self.target = target
        self.isolated = isolated
        self._check_shapes = bool(getattr(impl, "specs_complete", True))
        self._inputs = impl.inputs
        self._outputs = impl.outputs
        self._providers: List[str] = list(getattr(impl, "providers", None) or [])

    @property
    def backend(self) -> str:
        return self.target.backend

    @property
    def version(self) -> Optional[str]:
        return self._live().version

    @property
    def inputs(self) -> List[TensorSpec]:
        return list(self._inputs)

    @property
    def outputs(self) -> List[TensorSpec]:
        return list(self._outputs)

    @property
    def providers(self) -> List[str]:
        """ONNX Runtime execution providers in use (empty for the other backends)."""
        return list(self._providers)

    @property
    def path(self) -> str:
        return self.target.path

    @property
    def closed(self) -> bool:
        return self._impl is None

    def _live(self):
        if self._impl is None:
            raise SessionClosed(f"the session for {self.target.label} is closed",
                                "use it inside its `with` block, or open the model again with runtimes.open")
        return self._impl

    def run(self, feeds: Mapping[str, "object"], output_names: Optional[Sequence[str]] = None) -> Dict[str, "object"]:
        """Run on ``feeds`` (input name -> array); returns output name -> array, in the model's order,
        or only ``output_names`` in that order (like onnxruntime's ``InferenceSession.run``)."""
        impl = self._live()
        if isinstance(output_names, str):
            output_names = [output_names]
        if output_names is not None:
            known = [o.name for o in self._outputs]
            unknown = [n for n in output_names if n not in known]
            if unknown:
                raise InputError(f"{self.target.label} has no output named {', '.join(map(repr, unknown))}",
                                 f"its outputs are: {', '.join(known)}")
        outputs = impl.run(validate_feeds(self._inputs, dict(feeds), self._check_shapes))
        if output_names is None:
            return outputs
        return {name: outputs[name] for name in output_names}

    def close(self) -> None:
        if self._impl is not None:
            self._impl.close()
            self._impl = None

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = " closed" if self.closed else (" isolated" if self.isolated else "")
        return f"<wherry.runtimes.Session {self.target.label} backend={self.target.backend}{state}>"


def open_session(path, artifact: Optional[str] = None, threads: Optional[int] = None, isolate: bool = False,
                 backend: Optional[str] = None, providers: Optional[Sequence[str]] = None,
                 timeout: Optional[float] = None, max_reply_bytes: Optional[int] = None, child=None) -> Session:
    """Isolated sessions only: ``timeout`` (seconds) bounds loading and each run (the child is killed after
    it) and ``max_reply_bytes`` the outputs accepted from the child (default runtimes.npz.MAX_NPZ_BYTES);
    ``child`` (an isolate.SharedChild) loads the model in that child instead of a new one."""
    target = resolve(path, artifact, backend)
    _check_arch(target)
    backends.require(target.backend)
    if providers is not None:
        if isinstance(providers, str):
            providers = [providers]
        if target.backend != "onnxruntime":
            raise InputError(f"providers= applies to ONNX Runtime; {target.label} runs on {target.backend}",
                             "drop providers=, or open an .onnx artifact (artifact=\"model.onnx\")")
        providers = list(providers)
    if isolate and child is not None:
        impl = child.borrow(target, providers)
    elif isolate:
        from .isolate import IsolatedBackend

        impl = IsolatedBackend(target, threads, timeout, providers=providers, max_reply_bytes=max_reply_bytes)
    else:
        impl = backends.load(target.backend, target.path, threads, target.inputs, target.outputs, providers=providers)
    return Session(impl, target, isolate)
