"""Routes: PIR ops that are a legacy op under other names (translated by generic.py).

Each entry says only what differs from the name match (operand/attribute/result renames, dropped
training-only attributes); ``why`` says what changed in Paddle.
"""
from .ops import route

route("embedding", "lookup_table_v2", "renamed op; the table operand is the legacy W",
      inputs={"x": "Ids", "weight": "W"}, drop=("sparse",))
route("topk", "top_k_v2", "renamed op")
route("expand", "expand_v2", "renamed op")
route("full_like", "fill_any_like", "renamed op")
route("one_hot", "one_hot_v2", "the class count became an operand", inputs={"num_classes": "depth"})
route("group_norm", "group_norm", "data_format is the legacy data_layout", attrs={"data_format": "data_layout"})
route("pad3d", "pad3d", "the fill value is the legacy value", attrs={"pad_value": "value"})
route("roi_align", "roi_align", "renamed operands", inputs={"boxes": "ROIs", "boxes_num": "RoisNum"})
route("scatter", "scatter", "the index operand is the legacy Ids", inputs={"index": "Ids"})
route("rnn", "rnn", "dropout state is an operand in PIR; it only matters in training",
      drop=("dropout_state_in",), outputs={"dropout_state_out": "DropoutState"})
route("strided_slice", "strided_slice", "legacy needs one infer flag per axis (Paddle Inference crashes on none)",
      fixed={"infer_flags": lambda op, attrs: [1] * len(op.attrs["axes"])})
route("det", "determinant", "renamed op")
route("full_with_tensor", "fill_constant", "full with a run-time shape (or value): fill_constant's ShapeTensor "
      "(ValueTensor) input")
route("floor_divide", "elementwise_floordiv", "renamed op")
route("remainder", "elementwise_mod", "renamed op")
