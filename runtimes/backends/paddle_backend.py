"""Paddle Inference backend: the reference that golden outputs come from.

Opens legacy ``.pdmodel`` + ``.pdiparams``, Paddle 3 PIR ``.json`` +
``.pdiparams``, and Paddle 1.x directories (``__model__`` with one file per
parameter or a combined ``__params__``/``params`` file). The only module of
``runtimes`` that imports paddle.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import BackendUnavailable, BundleError
from ..specs import TensorSpec
from .base import Backend

log = logging.getLogger(__name__)

_COMBINED_1X = ("__params__", "params", "__variables__")
_PROTO_DTYPES = {0: "bool", 1: "int16", 2: "int32", 3: "int64", 4: "float16", 5: "float32", 6: "float64",
                 20: "uint8", 21: "int8"}
_PIR_DTYPES = {"t_f32": "float32", "t_f64": "float64", "t_f16": "float16", "t_i64": "int64", "t_i32": "int32",
               "t_i16": "int16", "t_i8": "int8", "t_ui8": "uint8", "t_bool": "bool"}


def locate(path: str) -> Tuple[str, Optional[str], str]:
    """(model file or 1.x dir, params file or None, format) for a file, prefix or directory."""
    given = Path(path)
    if given.is_dir():
        if (given / "__model__").is_file():
            combined = next((given / n for n in _COMBINED_1X if (given / n).is_file()), None)
            if combined is not None:
                return str(given / "__model__"), str(combined), "paddle1"
            return str(given), None, "paddle1"
        found = sorted(given.glob("*.pdmodel")) + sorted(p for p in given.glob("*.json")
                                                          if p.with_suffix(".pdiparams").is_file())
        if len(found) != 1:
            what = "no Paddle model" if not found else "several models (" + ", ".join(p.name for p in found) + ")"
            raise BundleError(f"{given} holds {what}", "pass the .pdmodel/.json file itself")
        given = found[0]
    elif not given.is_file():
        for suffix in (".pdmodel", ".json"):
            if given.with_name(given.name + suffix).is_file():
                given = given.with_name(given.name + suffix)
                break
        else:
            raise BundleError(f"no Paddle model at {path}", "pass a .pdmodel/.json file, a prefix or a model directory")
    if given.name == "__model__":
        return locate(str(given.parent))
    if given.suffix not in (".pdmodel", ".json"):
        raise BundleError(f"{given.name} is not a Paddle model file", "expected .pdmodel, .json or __model__")
    params = given.with_suffix(".pdiparams")
    if not params.is_file():
        raise BundleError(f"parameters file {params} is missing", f"copy {params.name} next to {given.name}")
    return str(given), str(params), "pir" if given.suffix == ".json" else "legacy"


def _legacy_specs(model_file: str):
    from paddle.base.proto import framework_pb2

    program = framework_pb2.ProgramDesc()
    program.ParseFromString(Path(model_file).read_bytes())
    block = program.blocks[0]
    variables = {v.name: v for v in block.vars}
    feeds, fetches = {}, {}
    for op in block.ops:
        col = next((a.i for a in op.attrs if a.name == "col"), 0)
        if op.type == "feed":
            feeds[col] = op.outputs[0].arguments[0]
        elif op.type == "fetch":
            fetches[col] = op.inputs[0].arguments[0]

    def spec(name):
        tensor = variables[name].type.dense_tensor.tensor
        return TensorSpec(name, _PROTO_DTYPES.get(tensor.data_type, "float32"),
                          tuple(None if d < 0 else int(d) for d in tensor.dims))
    return [spec(feeds[c]) for c in sorted(feeds)], [spec(fetches[c]) for c in sorted(fetches)]


def _pir_specs(model_file: str):
    data = json.loads(Path(model_file).read_text())
    inputs, outputs = [], []
    for op in data["program"]["regions"][0]["blocks"][0]["ops"]:
        kind = op.get("#", "").split(".", 1)[-1]
        if kind not in ("data", "fetch"):
            continue
        attrs = {a.get("N"): a.get("AT", {}).get("D") for a in op.get("A", []) if isinstance(a, dict)}
        if kind == "data":
            inputs.append(TensorSpec(str(attrs.get("name")), str(attrs.get("dtype") or "float32"),
                                     tuple(None if d < 0 else int(d) for d in attrs.get("shape") or [])))
        else:
            ttype = op["O"][0]["TT"]["D"]
            dtype = _PIR_DTYPES.get(ttype[0].get("#", "").split(".", 1)[-1], "float32")
            outputs.append((int(attrs.get("col") or 0),
                            TensorSpec(str(attrs.get("name")), dtype, tuple(None if d < 0 else int(d) for d in ttype[1]))))
    return inputs, [s for _, s in sorted(outputs, key=lambda t: t[0])]


class PaddleInferenceBackend(Backend):
    name = "paddle"

    def __init__(self, path: str, threads: Optional[int] = None):
        super().__init__()
        model, params, fmt = locate(path)
        try:
            import paddle
            import paddle.inference as pi
        except ImportError as exc:
            raise BackendUnavailable(f"Paddle cannot be imported: {exc}", "pip install paddlepaddle") from None
        self.version = paddle.__version__
        self.format = fmt
        config = pi.Config(model, params) if params else pi.Config(model)
        config.disable_gpu()
        config.disable_glog_info()
        # The reference runs the program as written: oneDNN kernels fail on some PIR attributes
        # (nearest_interp's double-array scale: "ConvertPirAttribute2RuntimeAttribute not support")
        # and fusion passes would make the reference depend on Paddle's own graph rewrites.
        config.disable_mkldnn()
        config.switch_ir_optim(False)
        config.set_cpu_math_library_num_threads(int(threads or 1))
        try:
            self._predictor = pi.create_predictor(config)
        except Exception as exc:  # noqa: BLE001 - paddle raises many types for bad programs
            raise BundleError(f"Paddle Inference cannot load {path}: {str(exc).strip().splitlines()[-1][:300]}",
                              "check that the model was saved for inference (paddle.jit.save)") from None
        self._in_names = list(self._predictor.get_input_names())
        self._out_names = list(self._predictor.get_output_names())
        try:
            model_file = os.path.join(model, "__model__") if os.path.isdir(model) else model
            inputs, outputs = _pir_specs(model_file) if fmt == "pir" else _legacy_specs(model_file)
        except Exception as exc:  # noqa: BLE001 - describing is best effort; running still works
            log.debug("cannot read specs from %s: %s", model, exc)
            inputs, outputs = [], []
        by_name = {s.name: s for s in inputs}
        if all(n in by_name for n in self._in_names):
            self.inputs = [by_name[n] for n in self._in_names]
        else:
            self.specs_complete = False
            self.inputs = [TensorSpec(n, "float32", ()) for n in self._in_names]
        out_by_name = {s.name: s for s in outputs}
        self.outputs = [out_by_name.get(n, TensorSpec(n, "float32", ())) for n in self._out_names]

    def run(self, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        for name in self._in_names:
            handle = self._predictor.get_input_handle(name)
            handle.reshape(list(feeds[name].shape))
            handle.copy_from_cpu(feeds[name])
        self._predictor.run()
        return {name: self._predictor.get_output_handle(name).copy_to_cpu() for name in self._out_names}

    def close(self) -> None:
        self._predictor = None


def open_backend(path: str, threads: Optional[int] = None, inputs: Optional[List[TensorSpec]] = None,
                 outputs: Optional[List[TensorSpec]] = None) -> Backend:
    return PaddleInferenceBackend(path, threads)
