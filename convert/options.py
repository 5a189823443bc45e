"""The options of a conversion, declared once.

Each field of :class:`ConvertOptions` is one option. Its name is the Python API keyword
(``wherry.convert.convert(..., precisions=[...])``) and the zoo file key (``precisions = [...]``);
its flag on ``wherry convert`` is that name with ``-`` for ``_`` (a list's flag in the singular,
repeatable: ``--precision fp32 --precision int8`` or ``--precision fp32,int8``). The field's
metadata (an :class:`Spec`) says how a value is read, the help text and where the option exists.
``cli.py`` builds the parser, ``api.py`` its keywords and ``zoo/spec.py`` its keys from these
declarations, so adding an option is one field here plus the code that uses it.

Every value, from the command line, Python or a zoo file, goes through the same reader of its
kind (``ConvertOptions.__post_init__``): a wrong value is one :class:`OptionError` naming the
option, whoever gave it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from wherry.runtimes.errors import InputError

ShapeSet = Dict[str, Tuple[int, ...]]

CALIB_METHODS = ("minmax", "kl", "percentile")   # how int8 activation ranges come from --calib
DEBUG_PROGRAM_CHOICES = ("auto", "always", "never")
LOCATE_CHOICES = ("auto", "never")


class OptionError(InputError):
    """A conversion option with a value its kind cannot read."""


@dataclass(frozen=True)
class Spec:
    """How one option is spelled and read. ``kind`` names its reader in ``READERS``."""

    kind: str
    help: str
    flags: Tuple[str, ...] = ()       # command-line spellings; () = the default --NAME (singular for lists)
    metavar: Optional[str] = None
    choices: Tuple[str, ...] = ()
    cli: bool = True                  # an option of `wherry convert`
    zoo: bool = True                  # a key a zoo file's model may set
    negated: Optional[str] = None     # a flag spelled as its negation on the command line (--no-verify)


def option(kind: str, help: str, default: Any = None, **spec: Any) -> Any:  # noqa: A002 - argparse's word
    """A ConvertOptions field declared with its Spec; lists get a fresh default each time."""
    meta = {"option": Spec(kind, help, **spec)}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


# ----------------------------------------------------------------------------- readers (one per kind)

def _names(value: Any, name: str) -> Optional[List[str]]:
    """"fp32,int8", ["fp32", "int8"] or ["fp32,int8"] (a repeated flag) -> ["fp32", "int8"]."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) for v in items):
        raise OptionError(f"{name} must be a name or a list of names", f'e.g. {name} = ["a", "b"]')
    return [v.strip() for item in items for v in item.split(",") if v.strip()]


def _path(value: Any, name: str) -> Optional[Path]:
    if value is None or value == "":
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise OptionError(f"{name} must be a file path, not {type(value).__name__}")
    return Path(value)


def _text(value: Any, name: str) -> Optional[str]:
    if value is not None and not isinstance(value, str):
        raise OptionError(f"{name} must be text, not {type(value).__name__}")
    return value


def _json_text(value: Any, name: str) -> Optional[str]:
    """A JSON spec as text (or a file name); a mapping given in Python or TOML is written as JSON."""
    return json.dumps(dict(value)) if isinstance(value, Mapping) else _text(value, name)


def preprocess_text(preprocess: Optional[str]) -> Optional[str]:
    """--preprocess takes JSON text or a path to a JSON file (JSON text starts with '{' or '[': never looked up
    as a path, where a long text was misreported as a file name longer than the file system allows)."""
    if not preprocess or preprocess.lstrip().startswith(("{", "[")):
        return preprocess
    try:
        is_file = Path(preprocess).is_file()
    except OSError:   # a name the file system cannot look up: not a file, so it is JSON text (or wrong)
        is_file = False
    if not is_file:
        return preprocess
    try:
        return Path(preprocess).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = "it is not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else (exc.strerror or str(exc))
        raise InputError(f"cannot read the preprocessing spec {preprocess}: {why}",
                         "pass a JSON file or JSON text, e.g. {\"size\": [224, 224]}") from None


def _typed(kind: type) -> Callable[[Any, str], Any]:
    def read(value: Any, name: str) -> Any:
        if value is None:
            return None
        number_ok = kind is float and isinstance(value, int)
        if isinstance(value, bool) and kind is not bool or not (isinstance(value, kind) or number_ok):
            raise OptionError(f"{name} has the wrong type ({type(value).__name__}; expected {kind.__name__})")
        return float(value) if kind is float else value
    return read


def _int_list(values: Any, name: str, what: str) -> Tuple[int, ...]:
    if not isinstance(values, (list, tuple)) or not all(isinstance(d, int) and not isinstance(d, bool)
                                                        for d in values):
        raise OptionError(f"{name} must map input names to lists of integers ({what})",
                          f"{name} = {{ x = [1, 3, 224, 224] }}")
    return tuple(values)


def _shape_sets(value: Any, name: str) -> List[ShapeSet]:
    """--shape NAME=D1,... (repeated: an input named again starts the next golden set), one mapping
    input -> dims, or a list of them (one golden set each) -> a list of golden sets."""
    from wherry.convert.golden import parse_shape_sets

    if not value:
        return []
    if isinstance(value, Mapping):
        value = [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return parse_shape_sets(list(value))
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, Mapping) for v in value):
        raise OptionError(f"{name} must map input names to shapes, or be a list of such maps",
                          f"{name} = {{ x = [1, 3, 224, 224] }}")
    return [{str(k): _int_list(v, name, "a shape; or a list of such tables, one golden set each") for k, v in one.items()}
            for one in value]


def _lengths(value: Any, name: str) -> Dict[str, List[int]]:
    """--lod NAME=L1,... or a mapping input -> sequence lengths."""
    from wherry.convert.golden import parse_lod_options

    if not value:
        return {}
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return parse_lod_options(list(value))
    if not isinstance(value, Mapping):
        raise OptionError(f"{name} must map sequence inputs to their lengths", f"{name} = {{ words = [4, 5] }}")
    return {str(k): list(_int_list(v, name, "sequence lengths")) for k, v in value.items()}


def _choice(value: Any, name: str, choices: Sequence[str]) -> Any:
    if value is not None and value not in choices:
        raise OptionError(f"unknown {name} {value!r}", f"choose one of {', '.join(choices)}")
    return value


READERS: Dict[str, Callable[[Any, str], Any]] = {
    "names": _names, "path": _path, "text": _text, "json": _json_text, "shapes": _shape_sets, "lod": _lengths,
    "int": _typed(int), "float": _typed(float), "flag": _typed(bool), "choice": _text,
}


def _pass_help() -> str:
    from wherry.convert.legalize import PASSES   # the registry is the list

    return ("disable a legalization pass (" + ", ".join(PASSES) + "): to see what it repairs")


def _formats_help() -> str:
    from wherry.convert.exporters import formats   # the registry is the list

    return f"artifact formats: {','.join(formats())} (default: the target's)"


# options whose help lists what a registry holds, read when the parser is built
_REGISTRY_HELP = {"skip_passes": _pass_help, "formats": _formats_help}


# ----------------------------------------------------------------------------- the declaration

@dataclass
class ConvertOptions:
    """Everything one conversion takes; see the module doc for how each field is spelled where."""

    model: str = option("text", "model directory, model file (.pdmodel/.json/__model__) or file prefix",
                        zoo=False, flags=("model",))   # a zoo model's `path`
    targets: List[str] = option("names", "target profile name or .toml file; repeat for several "
                                         "(default: desktop-x86_64)", default=["desktop-x86_64"],
                                flags=("-t", "--target"), metavar="TARGET", zoo=False)  # the zoo resolves its own
    formats: Optional[List[str]] = option("names", "", metavar="FMT")   # help: _formats_help (the registry)
    out: Path = option("path", "output directory (default: ./out)", default=Path("out"), flags=("-o", "--out"),
                       metavar="DIR", zoo=False)
    name: Optional[str] = option("text", "bundle name (default: derived from the model path)", zoo=False)
    inputs: Optional[Path] = option("path", "golden inputs: .npz with one array per model input", metavar="IN.npz")
    images: Optional[Path] = option("path", "golden inputs from a folder of real images (a one-input image model), "
                                            "see --preprocess", metavar="DIR")
    preprocess: Optional[str] = option(
        "json", "image preprocessing for --images and image --calib folders, JSON text or file: "
                '{"size": [224, 224], "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], '
                '"layout": "NCHW", "channel_order": "RGB"}; recorded in the manifest for devices', metavar="JSON")
    shapes: List[ShapeSet] = option(
        "shapes", "concrete shape for an input with dynamic dims (random golden inputs); name an input again for "
                  "another golden set, checked too (default: one more at half the dynamic dims, so a dynamic model "
                  "is proven at two shapes)", default=[], flags=("--shape",), metavar="NAME=D1,D2,...")
    lod: Dict[str, List[int]] = option(
        "lod", "sequence lengths of a sequence (LoD) input, e.g. --lod words=4,5 for two sequences of 4 and 5 rows "
               "(Paddle 1.x NLP models); in an --inputs .npz give them as 'NAME.lengths'", default={},
        metavar="NAME=L1,L2,...")
    seed: int = option("int", "seed for random golden inputs (default 0)", default=0)
    precisions: Optional[List[str]] = option(
        "names", "fp32,fp16,int8-weight,int16-weight,int8 (default: the target's)", metavar="P")
    calib: Optional[Path] = option("path", "calibration data for int8: arrays keyed by input name, first axis = "
                                           "samples", metavar="CALIB.npz")
    calib_method: str = option(
        "choice", "how int8 activation ranges come from --calib: minmax (observed range, default), kl "
                  "(KL-divergence threshold), percentile (99.999th); ONNX and Lite alike",
        default="minmax", choices=CALIB_METHODS)
    eval: Optional[Path] = option("path", "labelled data: the inputs + 'labels' (top-1), 'texts'+'charset' "
                                          "(CER), 'boxes' (box F1) or 'masks' (mIoU): every artifact's task metric "
                                          "and how much worse than the original it is", metavar="EVAL.npz")
    max_drop: Optional[float] = option(
        "float", "int8 accuracy guard: max task-metric points lost with --eval, else max %% cosine loss; the most "
                 "sensitive layers are kept in float until it holds", metavar="PP")
    skip_passes: List[str] = option("names", "", default=[], flags=("--skip-pass",), metavar="PASS")  # help: the registry
    debug_program: str = option(
        "choice", "keep the program that fed the exporters (legalized, translated from PIR) in the bundle, so "
                  "`wherry debug BUNDLE` needs no --model: auto (default) keeps it up to 32 MB, always, never",
        default="auto", choices=DEBUG_PROGRAM_CHOICES)
    locate: str = option(
        "choice", "when an fp32 .nb or ONNX artifact fails (a wrong result or a crash) on this host, find the op "
                  "where it leaves the model or dies (wherry debug, run for you before the bundle is published, "
                  "at most 10 min): auto (default), never", default="auto", choices=LOCATE_CHOICES)
    without_nms: bool = option(
        "flag", "detectors: export the network without its NMS tail (multiclass_nms*, matrix_nms): the bundle "
                "returns raw boxes and class scores and its manifest says which NMS to apply", default=False)
    require_all: bool = option(
        "flag", "fail (and write nothing) when any requested artifact cannot be built; by default the artifacts "
                "that were built ship and the rest are listed as not built", default=False)
    force: bool = option("flag", "replace existing bundles", default=False, zoo=False)
    verify: bool = option("flag", "skip running the artifacts on this host", default=True, negated="--no-verify")
    check_timeout: Optional[float] = option(
        "float", "stop verifying an artifact that takes longer than this to load or to run (default: 50 x the "
                 "golden run's time, at least 60 s; 0: no limit)", metavar="S")

    def __post_init__(self) -> None:
        for spec_field, _ in declared():
            setattr(self, spec_field.name, read(spec_field.name, getattr(self, spec_field.name)))
        if self.targets is None:
            self.targets = ["desktop-x86_64"]
        if self.out is None:
            self.out = Path("out")

    @property
    def golden_shapes(self) -> ShapeSet:
        """The first golden set's shapes (random golden inputs)."""
        return dict(self.shapes[0]) if self.shapes else {}

    @property
    def other_shapes(self) -> List[ShapeSet]:
        """The golden sets the user asked for beyond the first (--shape naming an input again)."""
        return list(self.shapes[1:])


def declared() -> Iterator[Tuple["dataclasses.Field[Any]", Spec]]:
    """(field, Spec) of every option, in declaration order."""
    for f in dataclasses.fields(ConvertOptions):
        yield f, f.metadata["option"]


def read(name: str, value: Any, label: Optional[str] = None) -> Any:
    """One option's value through its kind's reader (and its choices); errors name ``label`` (default: name)."""
    spec = ConvertOptions.__dataclass_fields__[name].metadata["option"]
    value = READERS[spec.kind](value, label or name)
    return _choice(value, label or name, spec.choices) if spec.choices else value


def zoo_keys() -> List[str]:
    """The options a zoo file's model may set (besides its `path` and `targets`)."""
    return [f.name for f, spec in declared() if spec.zoo]


def path_options() -> List[str]:
    return [f.name for f, spec in declared() if spec.kind == "path"]


# ----------------------------------------------------------------------------- the command line

def _flags(f: "dataclasses.Field[Any]", spec: Spec) -> Tuple[str, ...]:
    if spec.negated:
        return (spec.negated,)
    if spec.flags:
        return spec.flags
    plural = spec.kind == "names" and f.name.endswith("s")
    return ("--" + (f.name[:-1] if plural else f.name).replace("_", "-"),)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `wherry convert`, from the declaration (dest = the field's name)."""
    for f, spec in declared():
        if not spec.cli:
            continue
        flags = _flags(f, spec)
        help_text = spec.help or _REGISTRY_HELP[f.name]()
        if flags == (f.name,):   # the positional MODEL (optional: --example)
            parser.add_argument(f.name, nargs="?", help=help_text)
            continue
        kwargs: Dict[str, Any] = {"dest": f.name, "help": help_text}
        if spec.kind == "flag":
            kwargs["action"] = "store_false" if spec.negated else "store_true"
        else:
            kwargs["metavar"] = spec.metavar or f.name.upper()
            if spec.kind in ("names", "shapes", "lod"):
                kwargs["action"] = "append"
            elif spec.kind in ("int", "float"):
                kwargs["type"] = int if spec.kind == "int" else float
            if spec.choices:
                kwargs["choices"] = spec.choices
                kwargs.pop("metavar")
        kwargs["default"] = argparse.SUPPRESS   # absent on the command line -> the declaration's default
        parser.add_argument(*flags, **kwargs)


def from_arguments(args: argparse.Namespace, **overrides: Any) -> ConvertOptions:
    """ConvertOptions from a parsed `wherry convert` command line (what it did not give keeps its default)."""
    given = {f.name: getattr(args, f.name) for f, _ in declared() if hasattr(args, f.name)}
    return ConvertOptions(**{**given, **overrides})


def from_keywords(model: Any, keywords: Mapping[str, Any]) -> ConvertOptions:
    """ConvertOptions from the Python API's keywords; an unknown keyword is an OptionError naming the known."""
    known = {f.name for f, _ in declared()} - {"model"}
    unknown = sorted(set(keywords) - known)
    if unknown:
        raise OptionError(f"unknown option(s) {', '.join(unknown)}", f"options: {', '.join(sorted(known))}")
    return ConvertOptions(model=os.fspath(model), **keywords)
