"""The op table: how each PIR op kind travels to the legacy program. ``translate_op`` looks here:

1. ``TRANSLATORS``: a hand-written translator, where the semantics differ (constants that became
   operands, in-place statistics, vectors, control flow, ...);
2. ``ROUTES``: a declarative ``Route`` where only names differ (``embedding`` -> ``lookup_table_v2``
   with ``weight`` -> ``W``), translated by ``generic.py``;
3. otherwise the generic translator matches the PIR op to the legacy op of the same name over the
   wheel's own op definitions.

A hand translator reads the PIR op's operands (``b.name_of``), constant operands (``b.const``) and
attributes, and emits the legacy op with the slot names and typed attributes that Paddle Inference
and Paddle Lite read (the reference is what ``paddle.jit.save`` writes with
``FLAGS_enable_pir_api=0`` for the same layer).
"""
from __future__ import annotations

from typing import Callable, Dict, Optional

from .builder import (BOOL, FLOAT, FLOATS, INT, INTS, LONG, PROTO_DTYPE, STRING, Builder, TranslationError,
                      UpstreamFailed)
from .generic import Route, const_or_tensor, legacy_type_for, scalar_parts, translate_generic
from .reader import PirOp

TRANSLATORS: Dict[str, Callable[[Builder, PirOp], None]] = {}
ROUTES: Dict[str, Route] = {}   # keyed by the op name without dialect and in-place "_"


def route(name: str, legacy: str, why: str = "", **fields) -> None:
    ROUTES[name] = Route(legacy, why=why, **fields)


def translate_op(b: Builder, op: PirOp) -> str:
    """Translate one op; returns how it travelled ("hand-written", "table -> X", "generic -> X")."""
    if op.full_name in TRANSLATORS:
        TRANSLATORS[op.full_name](b, op)
        return "hand-written"
    if op.dialect != "pd_op":
        raise TranslationError("no translator")
    base = op.name.rstrip("_")
    if base in ROUTES:
        return "table -> " + translate_generic(b, op, ROUTES[base])
    return "generic -> " + translate_generic(b, op)


def describe(full_name: str) -> Optional[str]:
    """How ops of this kind would travel, judged by name alone (None: no way known)."""
    dialect, _, name = full_name.partition(".")
    if full_name in TRANSLATORS:
        return "hand-written"
    if dialect != "pd_op":
        return None
    base = name.rstrip("_")
    if base in ROUTES:
        return f"table -> {ROUTES[base].legacy}"
    legacy = legacy_type_for(base)
    return f"generic -> {legacy}" if legacy else None


def translates(*names: str):
    def register(func):
        for name in names:
            TRANSLATORS[name] = func
        return func
    return register


def _x(b: Builder, op: PirOp, k: int = 0) -> str:
    return b.name_of(op.inputs[k])


def _ints(values):
    return [int(v) for v in (values or [])]


# ------------------------------------------------------------------ constants and plumbing

@translates("pd_op.full_int_array")
def full_int_array(b, op):
    b.consts[op.outputs[0].id] = _ints(op.attrs["value"])
    b.values[op.outputs[0].id] = op.outputs[0]


@translates("pd_op.full")
def full(b, op):
    b.consts[op.outputs[0].id] = float(op.attrs["value"])
    b.values[op.outputs[0].id] = op.outputs[0]


@translates("pd_op.assign_value_", "pd_op.assign_value")
def assign_value(b, op):
    # a literal tensor (to_tensor in the model): a constant like full, materialized where it is used
    values = list(op.attrs["values"])
    shape = _ints(op.attrs.get("shape"))
    if not shape and len(values) == 1:
        b.consts[op.outputs[0].id] = float(values[0])
    else:
        b.consts[op.outputs[0].id] = values
    b.values[op.outputs[0].id] = op.outputs[0]


@translates("pd_op.arange")
def arange(b, op):
    # start/end/step come as float64 constants next to a dtype attribute; legacy range takes the
    # dtype of its inputs, so the constants are made in the output dtype
    dtype = str(op.attrs["dtype"])
    slots = {}
    for k, slot in enumerate(("Start", "End", "Step")):
        vid = op.inputs[k]
        if b.is_const(vid):
            slots[slot] = [b.constant(b.consts[vid], dtype, [1])]
        else:
            slots[slot] = [b.cast(vid, dtype, "range_arg")]
    b.emit("range", slots, {"Out": [b.output(op)]}, {})


@translates("builtin.combine")
def combine(b, op):
    b.vectors[op.outputs[0].id] = list(op.inputs)


@translates("builtin.split")
def builtin_split(b, op):
    names = b.split_results.get(op.inputs[0])
    if names is None and op.inputs[0] in b.failed:
        raise UpstreamFailed(f"value %{op.inputs[0]} comes from an op that was not translated")
    if names is None:
        raise TranslationError("builtin.split of a value that no split op produced")
    for value, name in zip(op.outputs, names):
        b.alias(value.id, name, value)


@translates("pd_op.assign")
def assign(b, op):
    b.emit("assign", {"X": [_x(b, op)]}, {"Out": [b.output(op)]}, {})


# ------------------------------------------------------------------ convolution, normalization

def _conv_attrs(op):
    return {"strides": INTS(op.attrs["strides"]), "paddings": INTS(op.attrs["paddings"]),
            "padding_algorithm": STRING(op.attrs.get("padding_algorithm", "EXPLICIT")),
            "dilations": INTS(op.attrs.get("dilations", [1, 1])), "groups": INT(op.attrs.get("groups", 1)),
            "data_format": STRING(op.attrs.get("data_format", "NCHW"))}


@translates("pd_op.conv2d", "pd_op.depthwise_conv2d")
def conv2d(b, op):
    b.emit(op.name, {"Input": [_x(b, op)], "Filter": [_x(b, op, 1)]}, {"Output": [b.output(op)]}, _conv_attrs(op))


@translates("pd_op.conv2d_transpose", "pd_op.depthwise_conv2d_transpose")
def conv2d_transpose(b, op):
    attrs = _conv_attrs(op)
    attrs["output_padding"] = INTS(op.attrs.get("output_padding") or [])
    attrs["output_size"] = INTS(b.const(op, 2, []) or [])
    b.emit(op.name, {"Input": [_x(b, op)], "Filter": [_x(b, op, 1)]}, {"Output": [b.output(op)]}, attrs)


@translates("pd_op.batch_norm", "pd_op.batch_norm_")
def batch_norm(b, op):
    # PIR operands: x, mean, variance, scale, bias. Legacy writes the running statistics in place.
    mean, variance = _x(b, op, 1), _x(b, op, 2)
    y = b.output(op, 0)
    b.alias(op.outputs[1].id, mean)
    b.alias(op.outputs[2].id, variance)
    saved = [b.output(op, k, "saved") for k in (3, 4)]
    b.emit("batch_norm", {"X": [_x(b, op)], "Scale": [_x(b, op, 3)], "Bias": [_x(b, op, 4)], "Mean": [mean],
                          "Variance": [variance]},
           {"Y": [y], "MeanOut": [mean], "VarianceOut": [variance], "SavedMean": [saved[0]],
            "SavedVariance": [saved[1]]},
           {"epsilon": FLOAT(op.attrs["epsilon"]), "momentum": FLOAT(op.attrs.get("momentum", 0.9)),
            "is_test": BOOL(True), "data_layout": STRING(op.attrs.get("data_format", "NCHW")),
            "use_global_stats": BOOL(op.attrs.get("use_global_stats", True)),
            "trainable_statistics": BOOL(False)})


@translates("pd_op.layer_norm")
def layer_norm(b, op):
    inputs = {"X": [_x(b, op)]}
    if b.has_input(op, 1):
        inputs["Scale"] = [_x(b, op, 1)]
    if b.has_input(op, 2):
        inputs["Bias"] = [_x(b, op, 2)]
    b.emit("layer_norm", inputs, {"Y": [b.output(op, 0)], "Mean": [b.output(op, 1)], "Variance": [b.output(op, 2)]},
           {"epsilon": FLOAT(op.attrs["epsilon"]), "begin_norm_axis": INT(op.attrs["begin_norm_axis"])})


# ------------------------------------------------------------------ activations

_UNARY = {"relu": "relu", "relu6": "relu6", "sigmoid": "sigmoid", "tanh": "tanh", "abs": "abs", "exp": "exp",
          "sqrt": "sqrt", "silu": "silu", "floor": "floor", "log": "log"}


@translates(*[f"pd_op.{n}" for n in _UNARY] + [f"pd_op.{n}_" for n in ("relu", "sigmoid", "tanh")])
def unary(b, op):
    kind = _UNARY[op.name.rstrip("_")]
    attrs = {"threshold": FLOAT(6.0)} if kind == "relu6" else {}
    b.emit(kind, {"X": [_x(b, op)]}, {"Out": [b.output(op)]}, attrs)


@translates("pd_op.hardswish")
def hardswish(b, op):
    b.emit("hard_swish", {"X": [_x(b, op)]}, {"Out": [b.output(op)]},
           {"threshold": FLOAT(6.0), "scale": FLOAT(6.0), "offset": FLOAT(3.0)})


@translates("pd_op.hardsigmoid")
def hardsigmoid(b, op):
    b.emit("hard_sigmoid", {"X": [_x(b, op)]}, {"Out": [b.output(op)]},
           {"slope": FLOAT(op.attrs.get("slope", 0.2)), "offset": FLOAT(op.attrs.get("offset", 0.5))})


@translates("pd_op.swish")
def swish(b, op):
    b.emit("swish", {"X": [_x(b, op)]}, {"Out": [b.output(op)]}, {"beta": FLOAT(1.0)})


@translates("pd_op.leaky_relu", "pd_op.leaky_relu_")
def leaky_relu(b, op):
    b.emit("leaky_relu", {"X": [_x(b, op)]}, {"Out": [b.output(op)]},
           {"alpha": FLOAT(op.attrs.get("negative_slope", 0.02))})


@translates("pd_op.gelu")
def gelu(b, op):
    b.emit("gelu", {"X": [_x(b, op)]}, {"Out": [b.output(op)]}, {"approximate": BOOL(op.attrs.get("approximate"))})


@translates("pd_op.softmax", "pd_op.softmax_")
def softmax(b, op):
    b.emit("softmax", {"X": [_x(b, op)]}, {"Out": [b.output(op)]},
           {"axis": INT(op.attrs.get("axis", -1)), "data_format": STRING("AnyLayout"), "use_cudnn": BOOL(False)})


@translates("pd_op.clip", "pd_op.clip_")
def clip(b, op):
    inputs, attrs = {"X": [_x(b, op)]}, {"min": FLOAT(-3.4e38), "max": FLOAT(3.4e38)}
    for k, attr in ((1, "min"), (2, "max")):   # run time: clip's Min / Max inputs
        const_or_tensor(b, op, k, "clip", attr, inputs, attrs, FLOAT)
    b.emit("clip", inputs, {"Out": [b.output(op)]}, attrs)


@translates("pd_op.scale", "pd_op.scale_")
def scale(b, op):
    bias, after = float(op.attrs.get("bias", 0.0)), bool(op.attrs.get("bias_after_scale", True))
    if not b.has_input(op, 1) or b.is_const(op.inputs[1]):
        b.emit("scale", {"X": [_x(b, op)]}, {"Out": [b.output(op)]},
               {"scale": FLOAT(b.const(op, 1, 1.0)), "bias": FLOAT(bias), "bias_after_scale": BOOL(after)})
        return
    # a factor computed at run time: legacy scale has a ScaleTensor input, but Lite registers no kernel
    # reading it (opt aborts), so the product is an elementwise_mul and the bias a scale by 1
    x, factor = _x(b, op), b.cast(op.inputs[1], op.outputs[0].dtype or "float32", "scale_factor")
    if not after and bias:
        shifted = b.declare(b.fresh("scale_in"), op.outputs[0].dtype, op.outputs[0].shape)
        b.emit("scale", {"X": [x]}, {"Out": [shifted]}, {"scale": FLOAT(1.0), "bias": FLOAT(bias),
                                                         "bias_after_scale": BOOL(True)})
        x = shifted
    if after and bias:
        product = b.declare(b.fresh("scaled"), op.outputs[0].dtype, op.outputs[0].shape)
        b.emit("elementwise_mul", {"X": [x], "Y": [factor]}, {"Out": [product]}, {"axis": INT(-1)})
        b.emit("scale", {"X": [product]}, {"Out": [b.output(op)]},
               {"scale": FLOAT(1.0), "bias": FLOAT(bias), "bias_after_scale": BOOL(True)})
    else:
        b.emit("elementwise_mul", {"X": [x], "Y": [factor]}, {"Out": [b.output(op)]}, {"axis": INT(-1)})


# ------------------------------------------------------------------ elementwise and matmul

_BINARY = {"add": "elementwise_add", "subtract": "elementwise_sub", "multiply": "elementwise_mul",
           "divide": "elementwise_div", "maximum": "elementwise_max", "minimum": "elementwise_min",
           "elementwise_pow": "elementwise_pow"}


@translates(*[f"pd_op.{n}" for n in _BINARY] + [f"pd_op.{n}_" for n in ("add", "subtract", "multiply")])
def binary(b, op):
    b.emit(_BINARY[op.name.rstrip("_")], {"X": [_x(b, op)], "Y": [_x(b, op, 1)]}, {"Out": [b.output(op)]},
           {"axis": INT(-1)})


@translates("pd_op.matmul")
def matmul(b, op):
    b.emit("matmul_v2", {"X": [_x(b, op)], "Y": [_x(b, op, 1)]}, {"Out": [b.output(op)]},
           {"trans_x": BOOL(op.attrs.get("transpose_x", False)), "trans_y": BOOL(op.attrs.get("transpose_y", False))})


# ------------------------------------------------------------------ pooling, resizing

@translates("pd_op.pool2d")
def pool2d(b, op):
    b.emit("pool2d", {"X": [_x(b, op)]}, {"Out": [b.output(op)]},
           {"ksize": INTS(b.const(op, 1)), "strides": INTS(op.attrs["strides"]),
            "paddings": INTS(op.attrs["paddings"]), "ceil_mode": BOOL(op.attrs.get("ceil_mode", False)),
            "exclusive": BOOL(op.attrs.get("exclusive", True)),
            "data_format": STRING(op.attrs.get("data_format", "NCHW")),
            "pooling_type": STRING(op.attrs["pooling_type"]),
            "global_pooling": BOOL(op.attrs.get("global_pooling", False)),
            "adaptive": BOOL(op.attrs.get("adaptive", False)),
            "padding_algorithm": STRING(op.attrs.get("padding_algorithm", "EXPLICIT")), "use_cudnn": BOOL(False)})


@translates("pd_op.nearest_interp", "pd_op.bilinear_interp", "pd_op.linear_interp", "pd_op.bicubic_interp",
            "pd_op.trilinear_interp")
def interpolate(b, op):
    # a size computed at run time (upsample to another tensor's size): PIR's out_size (one tensor),
    # size_tensor (one value per dim) and scale_tensor are the legacy OutSize, SizeTensor and Scale inputs
    inputs = {"X": [_x(b, op)]}
    if b.has_input(op, 1):
        inputs["OutSize"] = [b.cast(op.inputs[1], "int32", "out_size")]
    if b.has_input(op, 2):
        members = b.vectors.get(op.inputs[2])
        inputs["SizeTensor"] = (scalar_parts(b, members, "int32") if members is not None
                                else [b.cast(op.inputs[2], "int32", "size")])
    if b.has_input(op, 3):
        inputs["Scale"] = [b.cast(op.inputs[3], "float32", "scale")]
    b.emit(f"{op.name}_v2", inputs, {"Out": [b.output(op)]},
           {"data_layout": STRING(op.attrs.get("data_format", "NCHW")), "out_d": INT(op.attrs.get("out_d", -1)),
            "out_h": INT(op.attrs.get("out_h", -1)), "out_w": INT(op.attrs.get("out_w", -1)),
            "scale": FLOATS(op.attrs.get("scale") or []), "interp_method": STRING(op.attrs["interp_method"]),
            "align_corners": BOOL(op.attrs.get("align_corners", False)),
            "align_mode": INT(op.attrs.get("align_mode", 1))})


# ------------------------------------------------------------------ shape manipulation

def _with_xshape(b, op, legacy_type, inputs, attrs):
    out = b.output(op)
    source = b.values.get(op.inputs[0])
    xshape = b.declare(out + ".xshape", source.dtype if source else "float32",
                       [0] + list(source.shape if source and source.shape else []))
    b.emit(legacy_type, inputs, {"Out": [out], "XShape": [xshape]}, attrs)


@translates("pd_op.reshape", "pd_op.reshape_")
def reshape(b, op):
    inputs, attrs = {"X": [_x(b, op)]}, {"shape": INTS([])}
    const_or_tensor(b, op, 1, "reshape2", "shape", inputs, attrs, INTS)   # run time: reshape2's Shape input
    _with_xshape(b, op, "reshape2", inputs, attrs)


@translates("pd_op.flatten", "pd_op.flatten_")
def flatten(b, op):
    _with_xshape(b, op, "flatten_contiguous_range", {"X": [_x(b, op)]},
                 {"start_axis": INT(op.attrs["start_axis"]), "stop_axis": INT(op.attrs["stop_axis"])})


@translates("pd_op.transpose", "pd_op.transpose_")
def transpose(b, op):
    _with_xshape(b, op, "transpose2", {"X": [_x(b, op)]}, {"axis": INTS(op.attrs["perm"])})


@translates("pd_op.squeeze", "pd_op.squeeze_")
def squeeze(b, op):
    _axes_op(b, op, "squeeze2")


@translates("pd_op.unsqueeze", "pd_op.unsqueeze_")
def unsqueeze(b, op):
    _axes_op(b, op, "unsqueeze2")


def _axes_op(b, op, legacy_type):
    """(un)squeeze: axes given as a constant go to the attribute; computed at run time, to the tensor input the
    legacy op's proto has for them (unsqueeze2's AxesTensor / AxesTensorList; squeeze2 has none: an error that
    says so)."""
    inputs, attrs = {"X": [_x(b, op)]}, {"axes": INTS([])}
    const_or_tensor(b, op, 1, legacy_type, "axes", inputs, attrs, INTS)
    _with_xshape(b, op, legacy_type, inputs, attrs)


@translates("pd_op.concat")
def concat(b, op):
    parts = b.vectors.get(op.inputs[0])
    if parts is None:
        raise TranslationError("concat of a value that is not a vector")
    b.emit("concat", {"X": [b.name_of(v) for v in parts]}, {"Out": [b.output(op)]},
           {"axis": INT(b.const(op, 1, 0))})


@translates("pd_op.stack")
def stack(b, op):
    """Scalars stacked into a vector (a shape or a slice bound computed at run time: ``[n, -1, w]``)
    become ``reshape2`` to [1] + ``concat``, as legacy programs build them. A ``stack`` of 0-D tensors
    would make the same vector, but Lite cannot run 0-D tensors and the zero-d pass that makes them
    [1] would turn that vector into an [n, 1] matrix, which Paddle, Lite and paddle2onnx refuse as a shape."""
    members = b.vectors.get(op.inputs[0])
    scalars = members and all(m in b.values and b.values[m].shape == [] for m in members)
    if not scalars or int(op.attrs.get("axis", 0)) not in (0, -1):
        translate_generic(b, op)
        return
    b.emit("concat", {"X": scalar_parts(b, members)}, {"Out": [b.output(op)]}, {"axis": INT(0)})


def _split_outputs(b, op, count):
    value = op.outputs[0]
    names = []
    for k, element in enumerate(value.elements or [None] * count):
        name = b.fresh(f"{op.name}_{k}")
        b.declare(name, element.dtype if element else "float32", element.shape if element else [])
        names.append(name)
    b.split_results[value.id] = names
    return names


@translates("pd_op.split")
def split(b, op):
    """Sections and axis computed at run time go to split's SectionsTensorList (one value per part) and
    AxisTensor; the number of parts is then the vector's length, and the attribute keeps one -1 per part."""
    inputs, attrs = {"X": [_x(b, op)]}, {"axis": INT(0), "num": INT(0), "sections": INTS([])}
    const_or_tensor(b, op, 1, "split", "sections", inputs, attrs, INTS)
    const_or_tensor(b, op, 2, "split", "axis", inputs, attrs, INT)
    entries = inputs.pop("SectionsTensorList", None)
    count = len(attrs["sections"][1]) if entries is None else len(entries)
    names = _split_outputs(b, op, count)  # builtin.split then names each part
    if entries is None:
        b.emit("split", inputs, {"Out": names}, attrs)
        return
    if "AxisTensor" in inputs:
        raise TranslationError("split with both its sections and its axis computed at run time")
    _split_as_slices(b, inputs["X"][0], attrs["axis"][1], entries, names)


_TO_THE_END = 2 ** 31 - 1


def _split_as_slices(b, x: str, axis: int, entries, names) -> None:
    """A split whose sections are computed at run time, as one slice per part between running sums of the
    sections (each a [1] int32 tensor): legacy split's SectionsTensorList carries them for Paddle, but Paddle
    Lite 2.13's split refuses it when run (split_op.cc: ``Check failed: (infer_num < 2)``), and slice reads its
    bounds from tensors on every runtime. The last part runs to the end, as a -1 section would."""
    start = None
    for k, (entry, name) in enumerate(zip(entries, names)):
        last = k == len(entries) - 1
        inputs = {"Input": [x]}
        if start is not None:
            inputs["StartsTensor"] = [start]
        end = entry if start is None else b.declare(b.fresh("split_end"), "int32", [1])
        if start is not None and not last:
            b.emit("elementwise_add", {"X": [start], "Y": [entry]}, {"Out": [end]}, {"axis": INT(-1)})
        if not last:
            inputs["EndsTensor"] = [end]
        b.emit("slice", inputs, {"Out": [name]},
               {"axes": INTS([axis]), "starts": INTS([-1 if start is not None else 0]),
                "ends": INTS([-1 if not last else _TO_THE_END]),
                "infer_flags": INTS([-1 if start is not None or not last else 1]), "decrease_axis": INTS([])})
        start = end


@translates("pd_op.split_with_num")
def split_with_num(b, op):
    num = int(op.attrs["num"])
    inputs, attrs = {"X": [_x(b, op)]}, {"axis": INT(0), "num": INT(num), "sections": INTS([])}
    const_or_tensor(b, op, 1, "split", "axis", inputs, attrs, INT)
    names = _split_outputs(b, op, num)
    b.emit("split", inputs, {"Out": names}, attrs)


@translates("pd_op.slice")
def slice_(b, op):
    inputs = {"Input": [_x(b, op)]}
    attrs = {"axes": INTS(op.attrs["axes"]), "starts": INTS([]), "ends": INTS([]),
             "infer_flags": INTS(op.attrs.get("infer_flags") or [1] * len(op.attrs["axes"])),
             "decrease_axis": INTS(op.attrs.get("decrease_axis") or [])}
    for k, attr in ((1, "starts"), (2, "ends")):   # run time: slice's StartsTensor / EndsTensor
        const_or_tensor(b, op, k, "slice", attr, inputs, attrs, INTS)
        if not attrs[attr][1]:
            # read from a tensor: the attribute still needs one (ignored) entry per axis, or Paddle's shape
            # inference reads past its end and crashes; -1 is what Paddle 2 wrote there
            attrs[attr] = INTS([-1] * len(op.attrs["axes"]))
    b.emit("slice", inputs, {"Out": [b.output(op)]}, attrs)


@translates("pd_op.shape", "pd_op.shape64")
def shape(b, op):
    if op.name == "shape":
        b.emit("shape", {"Input": [_x(b, op)]}, {"Out": [b.output(op)]}, {})
        return
    # legacy shape always makes int32; shape64's users (slice, stack with int64 constants) expect int64
    dims = b.declare(b.fresh("shape"), "int32", op.outputs[0].shape)
    b.emit("shape", {"Input": [_x(b, op)]}, {"Out": [dims]}, {})
    b.emit("cast", {"X": [dims]}, {"Out": [b.output(op)]},
           {"in_dtype": INT(PROTO_DTYPE["int32"]), "out_dtype": INT(PROTO_DTYPE["int64"])})


@translates("pd_op.cast", "pd_op.cast_")
def cast(b, op):
    source = b.values.get(op.inputs[0])
    b.emit("cast", {"X": [_x(b, op)]}, {"Out": [b.output(op)]},
           {"in_dtype": INT(PROTO_DTYPE[source.dtype if source and source.dtype else "float32"]),
            "out_dtype": INT(PROTO_DTYPE[op.attrs["dtype"]])})


# ------------------------------------------------------------------ reductions

_REDUCE = {"mean": "reduce_mean", "sum": "reduce_sum", "max": "reduce_max", "min": "reduce_min",
           "prod": "reduce_prod"}


@translates(*[f"pd_op.{n}" for n in _REDUCE])
def reduce(b, op):
    axes = b.const(op, 1, [])
    axes = [axes] if isinstance(axes, (int, float)) else _ints(axes)
    b.emit(_REDUCE[op.name], {"X": [_x(b, op)]}, {"Out": [b.output(op)]},
           {"dim": INTS(axes), "keep_dim": BOOL(op.attrs.get("keepdim", False)), "reduce_all": BOOL(not axes),
            "in_dtype": INT(-1), "out_dtype": INT(-1)})  # paddle2onnx aborts without the dtype attrs


@translates("pd_op.dropout")
def dropout(b, op):
    # inference: dropout is the identity ("upscale_in_train") or a scale by 1-p ("downgrade_in_infer")
    b.emit("dropout", {"X": [_x(b, op)]}, {"Out": [b.output(op)]},
           {"dropout_prob": FLOAT(b.const(op, 2, 0.5)), "is_test": BOOL(True),
            "dropout_implementation": STRING(op.attrs.get("mode", "upscale_in_train"))})


@translates("pd_op.pow")
def pow_(b, op):
    b.emit("pow", {"X": [_x(b, op)]}, {"Out": [b.output(op)]}, {"factor": FLOAT(op.attrs.get("y", 1.0))})


@translates("pd_op.arg_max", "pd_op.argmax")
def arg_max(b, op):
    b.emit("arg_max", {"X": [_x(b, op)]}, {"Out": [b.output(op)]},
           {"axis": LONG(b.const(op, 1, -1)), "keepdims": BOOL(op.attrs.get("keepdims", False)),  # Lite reads a LONG
            "flatten": BOOL(op.attrs.get("flatten", False)),
            "dtype": INT(PROTO_DTYPE[op.attrs.get("dtype", "int64")])})


from . import control_flow, routes  # noqa: E402,F401 - they register their entries
