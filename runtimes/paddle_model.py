"""Paddle inference models on disk: finding their files and reading their interface without running them.

One place for what both the converter (convert/source.py) and the Paddle
Inference backend need. Three formats:

* ``legacy``  - ``*.pdmodel`` (protobuf ProgramDesc) + ``*.pdiparams``
* ``pir``     - ``*.json`` (Paddle 3 PIR program) + ``*.pdiparams``
* ``paddle1`` - a directory with ``__model__`` and one file per parameter
  (or a combined ``__params__``/``params`` file)

Reading a legacy program needs paddle's generated protobuf module (loaded
lazily, without importing paddle itself: see framework_proto); PIR programs are plain JSON.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections import Counter
from functools import lru_cache
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Dict, List, Optional, Tuple, Union

from .errors import ModelError
from .specs import TensorSpec

FORMATS = ("legacy", "pir", "paddle1")
COMBINED_1X_PARAMS = ("__params__", "params", "__variables__")

# framework.proto VarType.Type numbers and PIR type names -> numpy dtype names
PROTO_DTYPES = {0: "bool", 1: "int16", 2: "int32", 3: "int64", 4: "float16", 5: "float32", 6: "float64",
                20: "uint8", 21: "int8", 22: "bfloat16"}
PIR_DTYPES = {"f32": "float32", "f64": "float64", "f16": "float16", "bf16": "bfloat16", "i64": "int64",
              "i32": "int32", "i16": "int16", "i8": "int8", "ui8": "uint8", "bool": "bool"}


@dataclass
class ModelFiles:
    format: str                       # one of FORMATS
    model_file: Path                  # .pdmodel, .json or __model__
    params_file: Optional[Path]       # combined params; None for a 1.x dir with one file per parameter
    name: str                         # a short name (for bundles)

    @property
    def param_dir(self) -> Path:
        return self.model_file.parent

    def all_files(self) -> List[Path]:
        """Every file the model consists of (for hashing and copying)."""
        files = [self.model_file]
        if self.params_file is not None:
            files.append(self.params_file)
        elif self.format == "paddle1":
            files += sorted(p for p in self.param_dir.iterdir()
                            if p.is_file() and p.name != "__model__" and not p.name.startswith("."))
        return files


@dataclass
class ModelInterface:
    inputs: List[TensorSpec]
    outputs: List[TensorSpec]
    ops: Counter[str] = field(default_factory=Counter)   # op type -> count (feed/fetch/data excluded)
    control_flow: bool = False


# --------------------------------------------------------------------------- locating

def locate(path: Union[str, os.PathLike[str]]) -> ModelFiles:
    """Resolve a directory, a model file or a file prefix to the model's files."""
    given = Path(path)
    if given.is_dir():
        return _locate_in_dir(given)
    if given.is_file():
        return _from_model_file(given)
    for suffix in (".pdmodel", ".json"):
        candidate = given.with_name(given.name + suffix)
        if candidate.is_file():
            return _from_model_file(candidate)
    raise ModelError(f"no Paddle model at {path}",
                     "pass a model directory, a .pdmodel/.json file or a prefix such as models/inference")


def _locate_in_dir(folder: Path) -> ModelFiles:
    if (folder / "__model__").is_file():
        return _from_model_file(folder / "__model__")
    candidates = sorted(folder.glob("*.pdmodel")) + sorted(
        p for p in folder.glob("*.json") if p.with_suffix(".pdiparams").is_file())
    if not candidates:
        raise ModelError(f"{folder} holds no Paddle model (no *.pdmodel, *.json with .pdiparams, or __model__)",
                         "point at the directory `paddle.jit.save` or `save_inference_model` wrote")
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise ModelError(f"{folder} holds several models ({names})", "pass the model file itself")
    return _from_model_file(candidates[0])


def _from_model_file(model_file: Path) -> ModelFiles:
    if model_file.name == "__model__":
        folder = model_file.parent
        combined = next((folder / n for n in COMBINED_1X_PARAMS if (folder / n).is_file()), None)
        return ModelFiles("paddle1", model_file, combined, folder.resolve().name or "model")
    if model_file.suffix == ".pdmodel":
        fmt = "legacy"
    elif model_file.suffix == ".json":
        fmt = "pir"
    else:
        raise ModelError(f"{model_file.name} is not a Paddle model file",
                         "expected a .pdmodel (legacy), .json (Paddle 3 PIR) or __model__ (Paddle 1.x)")
    params = model_file.with_suffix(".pdiparams")
    if not params.is_file():
        raise ModelError(f"parameters file {params} is missing",
                         f"copy {params.name} next to {model_file.name} (both come from the same export)")
    return ModelFiles(fmt, model_file, params, _nice_name(model_file))


def _nice_name(model_file: Path) -> str:
    # "inference.pdmodel" / "model.json" say nothing; the directory usually does.
    stem = model_file.stem
    parent = model_file.resolve().parent.name
    return parent if stem in ("inference", "model") and parent else stem


# --------------------------------------------------------------------------- reading

PADDLE_PROTO = "paddle.base.proto.framework_pb2"
_PROTO_FILE = Path("base", "proto", "framework_pb2.py")   # PADDLE_PROTO's file, in the paddle package


@lru_cache(maxsize=1)
def framework_proto() -> ModuleType:
    """Paddle's program schema (framework.proto's generated module), without importing paddle.

    Importing ``paddle.base.proto.framework_pb2`` first runs paddle's ``__init__``: 1-2 s, in every
    process that only reads or edits a ProgramDesc. The generated file needs only protobuf, so it is
    loaded by path (~40 ms). Its messages register in protobuf's default pool, so a paddle imported
    later in the same process gets the very same classes. Nothing in wherry.runtimes imports paddle
    but the Paddle Inference backend: a paddle without that file is refused (ModuleNotFoundError)."""
    if PADDLE_PROTO in sys.modules:
        return sys.modules[PADDLE_PROTO]
    spec = importlib.util.find_spec("paddle")   # locates the package without running it
    if spec is None:
        raise ModuleNotFoundError("reading a legacy Paddle program (.pdmodel, __model__) needs paddle's "
                                  "framework_pb2, and paddle is not installed (pip install paddlepaddle)",
                                  name="paddle")
    locations = list(spec.submodule_search_locations or [])
    file = next((Path(folder) / _PROTO_FILE for folder in locations if (Path(folder) / _PROTO_FILE).is_file()),
                None)
    loader_spec = (importlib.util.spec_from_file_location("wherry_paddle_framework_pb2", file)
                   if file is not None else None)
    if loader_spec is None or loader_spec.loader is None:
        raise ModuleNotFoundError(f"the paddle at {', '.join(locations) or spec.origin} has no "
                                  f"{_PROTO_FILE.as_posix()}: wherry reads legacy Paddle programs with the "
                                  "framework_pb2 of Paddle 2.6 or newer (pip install -U paddlepaddle)",
                                  name=PADDLE_PROTO)
    module = importlib.util.module_from_spec(loader_spec)
    loader_spec.loader.exec_module(module)
    return module


def read_interface(files: ModelFiles) -> ModelInterface:
    if files.format == "pir":
        return _read_pir(files.model_file)
    return _read_legacy(load_program_desc(files.model_file))


def load_program_desc(model_file: Path) -> Any:   # a framework_pb2.ProgramDesc (no static type: made at run time)
    """Parse a legacy ProgramDesc, raising ModelError on corrupt input."""
    from google.protobuf.message import DecodeError
    program = framework_proto().ProgramDesc()
    try:
        program.ParseFromString(Path(model_file).read_bytes())
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelError(f"{model_file} is not a valid Paddle program (corrupt or truncated: {exc})",
                         "export the model again; check the download is complete") from None
    if not program.blocks or not any(op.type == "feed" for op in program.blocks[0].ops):
        raise ModelError(f"{model_file} is not a Paddle inference program (no feed ops)",
                         "export it with paddle.jit.save or paddle.static.save_inference_model")
    return program


def _read_legacy(program: Any) -> ModelInterface:   # a framework_pb2.ProgramDesc
    block = program.blocks[0]
    variables = {v.name: v for v in block.vars}
    feeds: Dict[int, str] = {}
    fetches: Dict[int, str] = {}
    ops: Counter[str] = Counter()
    for op in block.ops:
        col = next((a.i for a in op.attrs if a.name == "col"), 0)
        if op.type == "feed":
            feeds[col] = op.outputs[0].arguments[0]
        elif op.type == "fetch":
            fetches[col] = op.inputs[0].arguments[0]
        else:
            ops[op.type] += 1
    for extra in program.blocks[1:]:
        ops.update(op.type for op in extra.ops)

    def spec(name: str) -> TensorSpec:
        if name not in variables:
            raise ModelError(f"variable {name} is referenced but not declared in the program",
                             "the model file is damaged; export it again")
        desc = variables[name].type.dense_tensor  # "lod_tensor" before Paddle 3 (same field numbers)
        tensor = desc.tensor
        lod_level = int(getattr(desc, "legacy_lod_level", 0) or getattr(desc, "lod_level", 0) or 0)
        return TensorSpec(name, PROTO_DTYPES.get(tensor.data_type, "float32"),
                          tuple(None if d < 0 else int(d) for d in tensor.dims), lod_level)

    return ModelInterface([spec(feeds[c]) for c in sorted(feeds)], [spec(fetches[c]) for c in sorted(fetches)],
                          ops, control_flow=len(program.blocks) > 1)


def pir_dtype(type_node: Dict[str, Any]) -> str:
    """numpy dtype name of a PIR dense tensor type node such as {"#": "0.t_f32"}."""
    return PIR_DTYPES.get(type_node.get("#", "").split(".", 1)[-1].replace("t_", "", 1), "float32")


def load_pir_ops(json_path: Union[str, os.PathLike[str]]) -> List[Dict[str, Any]]:
    """The serialized ops of a PIR program's top-level block, or ModelError if it is not one."""
    try:
        data = json.loads(Path(json_path).read_text())
        if data.get("base_code", {}).get("magic") != "pir":
            raise ValueError("no PIR magic")
        ops: List[Dict[str, Any]] = data["program"]["regions"][0]["blocks"][0]["ops"]
        return ops
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{json_path} is not a Paddle 3 PIR program ({exc})",
                         "pass the model.json written by paddle.jit.save in Paddle 3") from None


def _read_pir(json_path: Path) -> ModelInterface:
    raw_ops = load_pir_ops(json_path)
    inputs: List[TensorSpec] = []
    outputs: List[Tuple[int, TensorSpec]] = []   # (fetch column, spec)
    ops: Counter[str] = Counter()
    control_flow = False
    for op in raw_ops:
        kind = op.get("#", "")
        if kind == "p":
            continue  # a parameter declaration
        name = kind.split(".", 1)[-1]
        attrs = {a.get("N"): a.get("AT", {}).get("D") for a in op.get("A", []) if isinstance(a, dict)}
        if name == "data":
            shape = tuple(None if d < 0 else int(d) for d in attrs.get("shape") or [])
            inputs.append(TensorSpec(str(attrs.get("name")), str(attrs.get("dtype") or "float32"), shape))
        elif name == "feed":
            # the input op of programs Paddle translated from legacy ones (paddle.pir.translate_to_pir): name and
            # column as attributes, dtype and shape only in its result type
            ttype = op["O"][0]["TT"]["D"]
            shape = tuple(None if d < 0 else int(d) for d in ttype[1])
            inputs.append(TensorSpec(str(attrs.get("name")), pir_dtype(ttype[0]), shape))
        elif name == "fetch":
            ttype = op["O"][0]["TT"]["D"]
            shape = tuple(None if d < 0 else int(d) for d in ttype[1])
            outputs.append((int(attrs.get("col") or 0), TensorSpec(str(attrs.get("name")), pir_dtype(ttype[0]), shape)))
        else:
            ops[name] += 1
            control_flow = control_flow or bool(op.get("regions"))
    if not inputs or not outputs:
        raise ModelError(f"{json_path} has no data (or feed) and fetch ops; it is not an inference program",
                         "export it with paddle.jit.save(layer, path, input_spec=[...])")
    return ModelInterface(inputs, [spec for _, spec in sorted(outputs, key=lambda t: t[0])], ops, control_flow)
