"""Model sources: find the files of a Paddle model, detect its format, and read
its inputs, outputs and ops without running it.

Three formats are accepted:

* ``legacy``  - ``*.pdmodel`` (protobuf ProgramDesc) + ``*.pdiparams``
* ``pir``     - ``*.json`` (Paddle 3 PIR program) + ``*.pdiparams``
* ``paddle1`` - a directory with ``__model__`` and one file per parameter
  (or a combined ``__params__``/``params`` file)
"""
from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from runtimes.errors import WherryError
from runtimes.specs import TensorSpec

log = logging.getLogger(__name__)

FORMATS = ("legacy", "pir", "paddle1")
_COMBINED_1X_PARAMS = ("__params__", "params", "__variables__")


class SourceError(WherryError):
    """The model files are missing, ambiguous or not a Paddle program."""


@dataclass
class ModelFiles:
    format: str                       # one of FORMATS
    model_file: Path                  # .pdmodel, .json or __model__
    params_file: Optional[Path]       # combined params; None for a 1.x dir with one file per parameter
    name: str                         # a short name for the bundle

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
class ModelInfo:
    files: ModelFiles
    inputs: List[TensorSpec]
    outputs: List[TensorSpec]
    ops: Counter = field(default_factory=Counter)
    has_control_flow: bool = False

    @property
    def format(self) -> str:
        return self.files.format


# --------------------------------------------------------------------------- locating

def locate(path: str | Path) -> ModelFiles:
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
    raise SourceError(f"no Paddle model at {path}",
                      "pass a model directory, a .pdmodel/.json file or a prefix such as models/inference")


def _locate_in_dir(folder: Path) -> ModelFiles:
    if (folder / "__model__").is_file():
        return _from_model_file(folder / "__model__")
    candidates = sorted(folder.glob("*.pdmodel")) + sorted(
        p for p in folder.glob("*.json") if p.with_suffix(".pdiparams").is_file())
    if not candidates:
        raise SourceError(f"{folder} holds no Paddle model (no *.pdmodel, *.json with .pdiparams, or __model__)",
                          "point at the directory `paddle.jit.save` or `save_inference_model` wrote")
    if len(candidates) > 1:
        names = ", ".join(p.name for p in candidates)
        raise SourceError(f"{folder} holds several models ({names})", "pass the model file itself")
    return _from_model_file(candidates[0])


def _from_model_file(model_file: Path) -> ModelFiles:
    if model_file.name == "__model__":
        folder = model_file.parent
        combined = next((folder / n for n in _COMBINED_1X_PARAMS if (folder / n).is_file()), None)
        return ModelFiles("paddle1", model_file, combined, folder.name or "model")
    if model_file.suffix == ".pdmodel":
        fmt = "legacy"
    elif model_file.suffix == ".json":
        fmt = "pir"
    else:
        raise SourceError(f"{model_file.name} is not a Paddle model file",
                          "expected a .pdmodel (legacy), .json (Paddle 3 PIR) or __model__ (Paddle 1.x)")
    params = model_file.with_suffix(".pdiparams")
    if not params.is_file():
        raise SourceError(f"parameters file {params} is missing",
                          f"copy {params.name} next to {model_file.name} (both come from the same export)")
    return ModelFiles(fmt, model_file, params, _nice_name(model_file))


def _nice_name(model_file: Path) -> str:
    # "inference.pdmodel" / "model.json" say nothing; the directory usually does.
    stem = model_file.stem
    if stem in ("inference", "model", "__model__") and model_file.parent.name:
        return model_file.parent.name
    return stem


# --------------------------------------------------------------------------- reading

def read(path: str | Path) -> ModelInfo:
    """Locate a model and read its interface and op list without running it."""
    files = locate(path)
    if files.format == "pir":
        return _read_pir(files)
    return _read_program_desc(files)


def load_program_desc(model_file: Path):
    """Parse a legacy ProgramDesc, raising SourceError on corrupt input."""
    from paddle.base.proto import framework_pb2  # host-only; imported lazily (paddle costs ~0.7 s)
    from google.protobuf.message import DecodeError

    data = model_file.read_bytes()
    program = framework_pb2.ProgramDesc()
    try:
        program.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise SourceError(f"{model_file} is not a valid Paddle program (corrupt or truncated: {exc})",
                          "export the model again; check the download is complete") from None
    if not program.blocks or not any(op.type == "feed" for op in program.blocks[0].ops):
        raise SourceError(f"{model_file} is not a Paddle inference program (no feed ops)",
                          "export it with paddle.jit.save or paddle.static.save_inference_model")
    return program


_PROTO_DTYPES = {0: "bool", 1: "int16", 2: "int32", 3: "int64", 4: "float16", 5: "float32", 6: "float64",
                 20: "uint8", 21: "int8", 22: "bfloat16"}


def _var_spec(block, name: str) -> TensorSpec:
    for var in block.vars:
        if var.name == name:
            tensor = var.type.dense_tensor.tensor  # "lod_tensor" before Paddle 3 (same field number)
            dtype = _PROTO_DTYPES.get(tensor.data_type, "float32")
            return TensorSpec(name, dtype, tuple(None if d < 0 else int(d) for d in tensor.dims))
    raise SourceError(f"variable {name} is referenced but not declared in the program",
                      "the model file is damaged; export it again")


def _read_program_desc(files: ModelFiles) -> ModelInfo:
    program = load_program_desc(files.model_file)
    block = program.blocks[0]
    feeds, fetches = {}, {}
    ops = Counter()
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
    inputs = [_var_spec(block, feeds[c]) for c in sorted(feeds)]
    outputs = [_var_spec(block, fetches[c]) for c in sorted(fetches)]
    _check_params_present(files, program)
    return ModelInfo(files, inputs, outputs, ops, has_control_flow=len(program.blocks) > 1)


def _check_params_present(files: ModelFiles, program) -> None:
    if files.format != "paddle1" or files.params_file is not None:
        return
    wanted = [v.name for v in program.blocks[0].vars if v.persistable and v.name not in ("feed", "fetch")]
    missing = [n for n in wanted if not (files.param_dir / n).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise SourceError(f"{len(missing)} parameter file(s) missing from {files.param_dir}: {shown}",
                          "copy the whole Paddle 1.x model directory")


_PIR_DTYPES = {"t_f32": "float32", "t_f64": "float64", "t_f16": "float16", "t_bf16": "bfloat16",
               "t_i64": "int64", "t_i32": "int32", "t_i16": "int16", "t_i8": "int8", "t_ui8": "uint8",
               "t_bool": "bool"}


def _read_pir(files: ModelFiles) -> ModelInfo:
    try:
        data = json.loads(files.model_file.read_text())
        if data.get("base_code", {}).get("magic") != "pir":
            raise ValueError("no PIR magic")
        ops_json = data["program"]["regions"][0]["blocks"][0]["ops"]
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, UnicodeDecodeError) as exc:
        raise SourceError(f"{files.model_file} is not a Paddle 3 PIR program ({exc})",
                          "pass the model.json written by paddle.jit.save in Paddle 3") from None
    inputs, outputs, ops = [], [], Counter()
    control_flow = False
    for op in ops_json:
        kind = op.get("#", "")
        name = kind.split(".", 1)[-1]
        if kind == "p":
            continue  # parameter declaration
        attrs = {a.get("N"): a.get("AT", {}).get("D") for a in op.get("A", []) if isinstance(a, dict)}
        if name == "data":
            dtype = str(attrs.get("dtype") or "float32")
            shape = tuple(None if d < 0 else int(d) for d in attrs.get("shape") or [])
            inputs.append(TensorSpec(str(attrs.get("name")), dtype, shape))
        elif name == "fetch":
            ttype = op["O"][0]["TT"]["D"]
            dtype = _PIR_DTYPES.get(ttype[0].get("#", "").split(".", 1)[-1], "float32")
            shape = tuple(None if d < 0 else int(d) for d in ttype[1])
            outputs.append((int(attrs.get("col") or 0), TensorSpec(str(attrs.get("name")), dtype, shape)))
        else:
            ops[name] += 1
            control_flow = control_flow or name in ("while", "if", "pylayer")
    if not inputs or not outputs:
        raise SourceError(f"{files.model_file} has no data/fetch ops; it is not an inference program",
                          "export it with paddle.jit.save(layer, path, input_spec=[...])")
    return ModelInfo(files, inputs, [spec for _, spec in sorted(outputs, key=lambda t: t[0])], ops, control_flow)
