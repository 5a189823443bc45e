"""The zoo file: which models, with which inputs, for which targets and precisions.

    targets = ["desktop-x86_64", "rpi4"]      # default for every model
    precisions = ["fp32"]                     # default: each target's own
    [models.resnet18]
    path = "models/resnet18/inference.pdmodel" # relative to the zoo file
    shapes = { x = [1, 3, 224, 224] }
    [models.ocr_det]
    path = "det/inference.pdmodel"
    images = "samples/"                        # or inputs = "det_inputs.npz"
    preprocess = { size = [640, 640], mean = [0.485, 0.456, 0.406], std = [0.229, 0.224, 0.225] }
    precisions = ["fp32", "int8"]
    calib = "calib.npz"

Every key of a model is an option of ``wherry convert`` (docs/zoo.md lists them).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Tuple

from wherry.convert.options import READERS, OptionError, declared, read, zoo_keys
from wherry.runtimes.errors import WherryError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

# a model's keys: its path and targets, and every option ConvertOptions declares for zoo files
MODEL_KEYS = {"path", "targets", *zoo_keys()}
TOP_KEYS = {"targets", "precisions", "formats", "models"}   # defaults for every model


class ZooError(WherryError):
    """The zoo file is missing or malformed."""


@dataclass(frozen=True)
class ModelEntry:
    """One model of the zoo with the options ``wherry convert`` would take for it (paths absolute)."""

    name: str
    path: str
    targets: List[str]
    options: Dict[str, object] = field(default_factory=dict)   # keywords of wherry.convert.convert

    def to_json(self) -> dict:
        return {"name": self.name, "path": self.path, "targets": list(self.targets), "options": dict(self.options)}

    @classmethod
    def from_json(cls, data: dict) -> "ModelEntry":
        return cls(data["name"], data["path"], list(data["targets"]), dict(data["options"]))


@dataclass(frozen=True)
class Zoo:
    path: Path
    models: List[ModelEntry]

    def cells(self):
        """(model, target) pairs in file order: one bundle each."""
        return [(m, t) for m in self.models for t in m.targets]


@lru_cache(maxsize=None)
def target_name(target: str) -> str:
    """The profile name a target (a built-in name or a profile file) stands for: its bundles' suffix."""
    from wherry.targets import load_profile
    return load_profile(target).name


def bundle_name(model: str, target: str) -> str:
    """The folder in -o of a cell: MODEL.PROFILE_NAME, as `wherry convert --name MODEL -t TARGET` writes it."""
    return f"{model}.{target_name(target)}"


def _targets(name: str, targets: List[str], base: Path) -> List[str]:
    """The model's targets, profile files made absolute (relative to the zoo file); each must load, and no
    two may be the same profile, since their bundles would be one folder and overwrite each other."""
    resolved: List[str] = []
    seen: Dict[str, str] = {}   # profile name -> the target that named it
    for target in targets:
        if target.endswith(".toml"):
            file = base / target
            if not _exists(file, Path.is_file):
                raise ZooError(f"models.{name}: target profile {_shown(file)} not found",
                               "a profile file's path is relative to the zoo file")
            target = str(file.resolve())
        try:
            profile = target_name(target)
        except WherryError as exc:
            raise ZooError(f"models.{name}: {exc.message}", exc.hint) from None
        if profile in seen:
            raise ZooError(f"models.{name}: targets {seen[profile]!r} and {target!r} are both the profile "
                           f"{profile!r}: both bundles would be {name}.{profile} and overwrite each other",
                           "list each target once, or give the profile file another `name`")
        seen[profile] = target
        resolved.append(target)
    return resolved


def _exists(path: Path, test=Path.exists) -> bool:
    """``test(path)``, False where the path cannot even be looked at (a name longer than the file system
    allows, a symlink loop): a zoo file's path that names nothing is one 'not found' error."""
    try:
        return test(path)
    except (OSError, ValueError):
        return False


def _shown(path: Path) -> str:
    """A path for a message: shortened if absurdly long (its error must stay one readable line)."""
    text = str(path)
    return text if len(text) <= 240 else f"{text[:200]}...({len(text)} characters)"


def _names(value, what: str) -> List[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ZooError(f"{what} must be a list of names", 'e.g. targets = ["desktop-x86_64", "rpi4"]')
    return value


def _plain_name(name: str) -> str:
    if not name or name in (".", "..") or any(c in name for c in "/\\\0"):
        raise ZooError(f"model name {name!r} is not a plain name", "a model's name names its bundles: no '/'")
    return name


def load_zoo(path) -> Zoo:
    """Read and validate a zoo file; a mistake is one readable ZooError (exit 2) before any work starts."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ZooError(f"zoo file {path} not found", "give the path of a TOML zoo file (docs/zoo.md)") from None
    except OSError as exc:
        raise ZooError(f"cannot read zoo file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ZooError(f"zoo file {path} is not UTF-8 text", "a zoo file is TOML (docs/zoo.md)") from None
    except (tomllib.TOMLDecodeError, RecursionError) as exc:   # RecursionError: nesting past tomllib's limit
        raise ZooError(f"zoo file {path} is not valid TOML: {exc}", "see docs/zoo.md for the format") from None
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise ZooError(f"zoo file {path}: unknown key(s) {', '.join(unknown)}",
                       f"top-level keys: {', '.join(sorted(TOP_KEYS))}; models go under [models.NAME]")
    models = data.get("models")
    if not isinstance(models, dict) or not models:
        raise ZooError(f"zoo file {path} lists no models", 'add one: [models.NAME] with path = "model.pdmodel"')
    base = path.resolve().parent
    defaults = {k: data[k] for k in ("targets", "precisions", "formats") if k in data}
    zoo = Zoo(path, [_model(name, entry, defaults, base, path) for name, entry in models.items()])
    _one_folder_per_cell(zoo)
    return zoo


def _one_folder_per_cell(zoo: Zoo) -> None:
    """Cells of different models may still meet in one bundle folder, the names having dots in them: model
    `a` on profile `b.c` and model `a.b` on profile `c` are both `a.b.c`, and the last cell overwrote the
    first (both reported passed)."""
    seen: Dict[str, Tuple[str, str]] = {}   # bundle folder -> (model, target) of the cell that claims it
    for model, target in zoo.cells():
        folder = bundle_name(model.name, target)
        if folder in seen and seen[folder][0] != model.name:
            other, other_target = seen[folder]
            raise ZooError(f"models.{other} on {other_target!r} and models.{model.name} on {target!r} would both "
                           f"be the bundle {folder} and overwrite each other",
                           "rename a model (or a profile file's `name`) so that no two cells share a folder")
        seen.setdefault(folder, (model.name, target))


def _model(name: str, entry, defaults: dict, base: Path, zoo_path: Path) -> ModelEntry:
    _plain_name(name)
    if not isinstance(entry, dict):
        raise ZooError(f"zoo file {zoo_path}: models.{name} must be a table", f'[models.{name}] path = "..."')
    unknown = sorted(set(entry) - MODEL_KEYS)
    if unknown:
        raise ZooError(f"zoo file {zoo_path}: models.{name}: unknown key(s) {', '.join(unknown)}",
                       f"keys: {', '.join(sorted(MODEL_KEYS))}")
    if not isinstance(entry.get("path"), str):
        raise ZooError(f"zoo file {zoo_path}: models.{name} has no path", 'path = "inference.pdmodel"')
    merged = {**defaults, **entry}
    model_path = base / entry["path"]
    if not _exists(model_path) and not _exists(model_path, lambda p: any(p.parent.glob(p.name + ".*"))):
        raise ZooError(f"models.{name}: model {_shown(model_path)} not found", "paths are relative to the zoo file")
    targets = _targets(name, _names(merged.get("targets", ["desktop-x86_64"]), f"models.{name}.targets"), base)
    options: Dict[str, object] = {}
    for spec_field, spec in declared():
        key = spec_field.name
        if key not in merged or not spec.zoo:
            continue
        if spec.kind == "path":
            file = base / str(merged[key])
            if not _exists(file):
                raise ZooError(f"models.{name}: {key} {_shown(file)} not found", "paths are relative to the zoo file")
            options[key] = str(file)
            continue
        try:   # the option's own reader: the same rule as on the command line and in Python
            read(key, merged[key], f"models.{name}.{key}")
        except OptionError as exc:
            raise ZooError(exc.message, exc.hint) from None
        # kept as TOML gave it (JSON for the workers); a preprocess table as its JSON text
        options[key] = READERS["json"](merged[key], key) if spec.kind == "json" else merged[key]
    return ModelEntry(name, str(model_path), targets, options)
