"""Export a small detector with an NMS tail (multiclass_nms3) as a legacy .pdmodel.

    python tests/support/export_detection_model.py OUT_PREFIX [scaled]

The tail of PaddleDetection's exported detectors: per-anchor boxes [N, M, 4] and class scores
[N, C, M] go through multiclass_nms3, which returns a variable number of rows [class, score, x1, y1,
x2, y2] and the count per image. Built with the legacy static API (LayerHelper ops); weights seeded.
``scaled`` fetches each output through a `scale` op of scale 1, as Paddle 2.x's save_inference_model
writes PaddleDetection's exports (``save_infer_model/scale_0.tmp_0``).
"""
import os
import sys

os.environ["FLAGS_enable_pir_api"] = "0"

import numpy as np
import paddle
from paddle.base.layer_helper import LayerHelper

ANCHORS, FEATURES, CLASSES = 32, 8, 3


def build(scaled=False):
    paddle.enable_static()
    main, startup = paddle.static.Program(), paddle.static.Program()
    rng = np.random.default_rng(0)
    with paddle.static.program_guard(main, startup):
        x = paddle.static.data("x", [1, ANCHORS, FEATURES], "float32")
        helper = LayerHelper("detector")

        def param(name, shape, scale):
            init = paddle.nn.initializer.Assign(rng.normal(0, scale, shape).astype("float32"))
            return paddle.static.create_parameter(shape, "float32", name=name, default_initializer=init)

        def op(kind, inputs, attrs=None, outputs=("Out",), dtype="float32"):
            made = {k: helper.create_variable_for_type_inference(dtype if k != "NmsRoisNum" else "int32")
                    for k in outputs}
            helper.append_op(type=kind, inputs=inputs, outputs=made, attrs=attrs or {})
            return made if len(outputs) > 1 else made[outputs[0]]

        raw = op("matmul_v2", {"X": x, "Y": param("box_w", [FEATURES, 4], 1.0)}, {"trans_x": False, "trans_y": False})
        corner = op("slice", {"Input": raw}, {"axes": [2], "starts": [0], "ends": [2], "decrease_axis": []})
        size = op("exp", {"X": op("slice", {"Input": raw}, {"axes": [2], "starts": [2], "ends": [4],
                                                            "decrease_axis": []})})
        corner = op("scale", {"X": corner}, {"scale": 20.0, "bias": 50.0, "bias_after_scale": True})
        size = op("scale", {"X": size}, {"scale": 10.0, "bias": 1.0, "bias_after_scale": True})
        boxes = op("concat", {"X": [corner, op("elementwise_add", {"X": corner, "Y": size}, {"axis": -1})]},
                   {"axis": 2})
        logits = op("matmul_v2", {"X": x, "Y": param("cls_w", [FEATURES, CLASSES], 1.0)},
                    {"trans_x": False, "trans_y": False})
        scores = op("transpose2", {"X": op("sigmoid", {"X": logits})}, {"axis": [0, 2, 1]}, ("Out", "XShape"))["Out"]
        nms = op("multiclass_nms3", {"BBoxes": boxes, "Scores": scores},
                 {"score_threshold": 0.3, "nms_top_k": 100, "keep_top_k": 20, "nms_threshold": 0.5,
                  "normalized": False, "nms_eta": 1.0, "background_label": -1},
                 ("Out", "Index", "NmsRoisNum"))
        outputs = [nms["Out"], nms["NmsRoisNum"]]
        if scaled:
            outputs = [op("scale", {"X": o}, {"scale": 1.0, "bias": 0.0, "bias_after_scale": True},
                          dtype="float32" if i == 0 else "int32") for i, o in enumerate(outputs)]
    exe = paddle.static.Executor(paddle.CPUPlace())
    exe.run(startup)
    return main, x, outputs, exe


if __name__ == "__main__":
    main, x, fetches, exe = build(scaled=sys.argv[2:] == ["scaled"])
    paddle.static.save_inference_model(sys.argv[1], [x], fetches, exe, program=main.clone(for_test=True))
