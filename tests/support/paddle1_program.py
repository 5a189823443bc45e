"""Building and saving a Paddle 1.x-style static program, for the export scripts beside this module.

Imported by scripts that run under different Paddles (3.3.1 for the sequence tagger, 2.6.2 for the
Senta-style model): a script that needs ``FLAGS_enable_pir_api=0`` sets it before importing this module.
"""
import os
import shutil

import paddle
from paddle.base.layer_helper import LayerHelper


def param_maker(rng):
    """``param(name, shape, scale)``: a parameter with seeded N(0, scale) values drawn from ``rng`` in call order."""
    def param(name, shape, scale):
        init = paddle.nn.initializer.Assign(rng.normal(0, scale, shape).astype("float32"))
        return paddle.static.create_parameter(shape, "float32", name=name, default_initializer=init)
    return param


def op_maker(helper_name):
    """``op(kind, inputs, outputs, attrs, dtype)``: append a raw op (as Paddle 1.x programs hold them), new outputs."""
    helper = LayerHelper(helper_name)

    def op(kind, inputs, outputs, attrs=None, dtype="float32"):
        made = {k: helper.create_variable_for_type_inference(dtype) for k in outputs}
        helper.append_op(type=kind, inputs=inputs, outputs=made, attrs=attrs or {})
        return made
    return op


def save_paddle1(out, main, feeds, fetches, exe):
    """Save as Paddle 1.x did: ``__model__`` + one file per parameter in ``out``."""
    os.makedirs(out, exist_ok=True)
    program = main.clone(for_test=True)
    prefix = os.path.join(out, "tmp", "model")
    # clip_extra=False keeps the outputs Paddle 1.x wrote (gru's BatchGate, sequence_pool's MaxIndex, ...):
    # without them Paddle 3 itself crashes on the gru
    paddle.static.save_inference_model(prefix, feeds, fetches, exe, program=program, clip_extra=False)
    inference, _, _ = paddle.static.load_inference_model(prefix, exe)
    with open(os.path.join(out, "__model__"), "wb") as f:
        f.write(inference.desc.serialize_to_string())
    params = [v for v in inference.list_vars() if v.persistable and v.name not in ("feed", "fetch")]
    paddle.static.save_vars(exe, out, main_program=inference, vars=params, filename=None)
    shutil.rmtree(os.path.join(out, "tmp"))
