"""Paddle Inference backend: the reference that golden outputs come from.

Opens legacy ``.pdmodel`` + ``.pdiparams``, Paddle 3 PIR ``.json`` +
``.pdiparams``, and Paddle 1.x directories (``__model__`` with one file per
parameter or a combined ``__params__``/``params`` file). The only module of
``runtimes`` that imports paddle.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

from numpy.typing import NDArray

from ..errors import BackendUnavailable, BundleError, PaddleOpMissing, WherryError
from ..npz import lengths_key, offsets
from ..paddle_errors import missing_op, summarize
from ..paddle_model import locate, read_interface
from ..specs import TensorSpec
from .base import Backend

log = logging.getLogger(__name__)


# what to do when the installed Paddle lacks an op (`wherry convert` does it itself: convert/legacy_paddle.py)
LEGACY_TODO = ("run it under Paddle 2.6.2, the last release with the Paddle 1.x LoD kernels (pip install "
               "paddlepaddle==2.6.2 in a separate environment); `wherry convert` does so by itself in a cached one")


class PaddleRunError(WherryError):
    """Paddle Inference refused to run the model on the given inputs."""


class PaddleInferenceBackend(Backend):
    name = "paddle"

    def __init__(self, path: str, threads: Optional[int] = None) -> None:
        super().__init__()
        files = locate(path)
        fmt = files.format
        if fmt == "paddle1" and files.params_file is None:
            model, params = str(files.param_dir), None  # Paddle reads one file per parameter from the dir
        else:
            model, params = str(files.model_file), str(files.params_file)
        try:
            import paddle
            import paddle.inference as pi
        except ImportError as exc:
            raise BackendUnavailable(f"Paddle cannot be imported: {exc}", "pip install paddlepaddle") from None
        self.version = paddle.__version__  # type: ignore[attr-defined]  # paddle's stubs omit it
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
            self._predictor: Any = pi.create_predictor(config)  # None once closed
        except Exception as exc:  # noqa: BLE001 - paddle raises many types for bad programs
            self._raise_if_op_missing(str(exc))
            message, paddle_hint = summarize(str(exc))
            raise BundleError(f"Paddle Inference cannot load {path}: {message}",
                              (f"Paddle says: {paddle_hint}. " if paddle_hint else "")
                              + "check that the model was saved for inference (paddle.jit.save)") from None
        self._in_names = list(self._predictor.get_input_names())
        self._out_names = list(self._predictor.get_output_names())
        try:
            interface = read_interface(files)
            inputs, outputs = interface.inputs, interface.outputs
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

    def run(self, feeds: Dict[str, NDArray[Any]]) -> Dict[str, NDArray[Any]]:
        try:
            for name in self._in_names:
                handle = self._predictor.get_input_handle(name)
                handle.reshape(list(feeds[name].shape))
                handle.copy_from_cpu(feeds[name])
                if lengths_key(name) in feeds:  # a sequence (LoD) input
                    handle.set_lod([offsets(feeds[lengths_key(name)])])
            self._predictor.run()
            return {name: self._predictor.get_output_handle(name).copy_to_cpu() for name in self._out_names}
        except Exception as exc:  # noqa: BLE001 - Paddle raises ValueError/RuntimeError/... with its C++ report
            self._raise_if_op_missing(str(exc))
            message, paddle_hint = summarize(str(exc))
            raise PaddleRunError(f"Paddle Inference failed to run the model: {message}",
                                 (f"Paddle says: {paddle_hint}. " if paddle_hint else "")
                                 + "check the inputs (names, shapes, dtypes, value ranges) against what the model "
                                 "expects") from None

    def _raise_if_op_missing(self, text: str) -> None:
        """A model this Paddle cannot run at all (an op it has no kernel for) is not a badly saved model."""
        op = missing_op(text)
        if op is not None:
            raise PaddleOpMissing.missing(op, str(self.version), LEGACY_TODO) from None

    def close(self) -> None:
        self._predictor = None


def open_backend(path: str, threads: Optional[int] = None, inputs: Optional[List[TensorSpec]] = None,
                 outputs: Optional[List[TensorSpec]] = None) -> Backend:
    return PaddleInferenceBackend(path, threads)
