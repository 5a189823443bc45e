"""Detectors with their post-processing: PicoDet-style (GFL head, distribution focal decoding, multiclass
NMS) and PP-YOLO-style (YOLOv3 head decoded by yolo_box, multiclass NMS)."""
import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from zoo.common import ConvBN, DepthwiseSeparable


def multiclass_nms(bboxes, scores, score_threshold=0.05, nms_top_k=100, keep_top_k=20, nms_threshold=0.5):
    """multiclass_nms3 as detection suites emit it: the PIR op under PIR, the legacy op otherwise."""
    if paddle.framework.in_pir_mode():
        out, index, count = paddle._C_ops.multiclass_nms3(bboxes, scores, None, score_threshold, nms_top_k,
                                                          keep_top_k, nms_threshold, True, 1.0, -1)
        return out, count
    helper = paddle.base.layer_helper.LayerHelper("multiclass_nms3")
    out = helper.create_variable_for_type_inference(bboxes.dtype)
    index = helper.create_variable_for_type_inference("int32")
    count = helper.create_variable_for_type_inference("int32")
    helper.append_op(type="multiclass_nms3", inputs={"BBoxes": bboxes, "Scores": scores},
                     outputs={"Out": out, "Index": index, "NmsRoisNum": count},
                     attrs={"score_threshold": score_threshold, "nms_top_k": nms_top_k, "keep_top_k": keep_top_k,
                            "nms_threshold": nms_threshold, "normalized": True, "nms_eta": 1.0,
                            "background_label": -1})
    return out, count


class Backbone(nn.Layer):
    def __init__(self, w=8):
        super().__init__()
        self.stem = ConvBN(3, w, 3, 2)
        self.s1 = DepthwiseSeparable(w, w * 2, 2)
        self.s2 = DepthwiseSeparable(w * 2, w * 4, 2, se=True)   # /8
        self.s3 = DepthwiseSeparable(w * 4, w * 8, 2, k=5)       # /16

    def forward(self, x):
        f2 = self.s2(self.s1(self.stem(x)))
        return f2, self.s3(f2)


class PicoDet(nn.Layer):
    """Two-level PAN-ish neck; per level a shared head predicting class scores (sigmoid) and a
    distribution over reg_max+1 bins per box side, decoded to boxes around anchor points."""

    def __init__(self, classes=3, reg_max=7, w=8, size=64):
        super().__init__()
        self.backbone = Backbone(w)
        c = w * 4
        self.lat = nn.LayerList([nn.Conv2D(w * 4, c, 1), nn.Conv2D(w * 8, c, 1)])
        self.head = nn.LayerList([DepthwiseSeparable(c, c, 1, k=5) for _ in range(2)])
        self.cls = nn.LayerList([nn.Conv2D(c, classes, 1) for _ in range(2)])
        self.reg = nn.LayerList([nn.Conv2D(c, 4 * (reg_max + 1), 1) for _ in range(2)])
        self.reg_max, self.size, self.strides = reg_max, size, (8, 16)

    def forward(self, image):
        f8, f16 = self.backbone(image)
        p16 = self.lat[1](f16)
        p8 = self.lat[0](f8) + F.interpolate(p16, scale_factor=2, mode="bilinear")
        boxes, scores = [], []
        for i, (feat, stride) in enumerate(zip((p8, p16), self.strides)):
            y = self.head[i](feat)
            n, _, h, w = y.shape
            score = F.sigmoid(self.cls[i](y)).flatten(2)                          # [N, C, HW]
            dist = self.reg[i](y).flatten(2).transpose([0, 2, 1])                  # [N, HW, 4*(R+1)]
            dist = F.softmax(dist.reshape([n, h * w, 4, self.reg_max + 1]), axis=-1)
            project = paddle.arange(self.reg_max + 1, dtype="float32")
            ltrb = paddle.matmul(dist, project.unsqueeze(-1)).squeeze(-1) * stride  # [N, HW, 4]
            ys, xs = paddle.meshgrid(paddle.arange(h, dtype="float32"), paddle.arange(w, dtype="float32"))
            centers = paddle.stack([xs.flatten(), ys.flatten()], axis=-1) * stride + stride / 2
            x1y1 = centers - ltrb[:, :, :2]
            x2y2 = centers + ltrb[:, :, 2:]
            boxes.append(paddle.concat([x1y1, x2y2], axis=-1) / self.size)
            scores.append(score)
        boxes = paddle.concat(boxes, axis=1)
        scores = paddle.concat(scores, axis=2)
        # random weights score every box near 0.5: keep the few clear winners, where NMS is not a
        # coin toss between scores equal up to float rounding
        out, count = multiclass_nms(boxes, scores, score_threshold=0.5, keep_top_k=4)
        return boxes, scores, out, count


class PPYolo(nn.Layer):
    """YOLOv3-style head on two levels, decoded by yolo_box, then multiclass NMS."""

    def __init__(self, classes=2, w=8, size=64):
        super().__init__()
        self.backbone = Backbone(w)
        self.anchors = ([10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119])
        self.classes, self.size = classes, size
        self.heads = nn.LayerList([nn.Sequential(ConvBN(ch, 32, 3, act="relu"), nn.Conv2D(32, 3 * (5 + classes), 1))
                                   for ch in (w * 4, w * 8)])

    def forward(self, image):
        feats = self.backbone(image)
        img_size = paddle.full([1, 2], self.size, dtype="int32")
        boxes, scores = [], []
        for feat, head, anchors, stride in zip(feats, self.heads, self.anchors, (8, 16)):
            b, s = paddle.vision.ops.yolo_box(head(feat), img_size, anchors, self.classes, conf_thresh=0.01,
                                               downsample_ratio=stride, clip_bbox=True)
            boxes.append(b / self.size)
            scores.append(s)
        boxes = paddle.concat(boxes, axis=1)
        scores = paddle.concat(scores, axis=1).transpose([0, 2, 1])
        out, count = multiclass_nms(boxes, scores, score_threshold=0.01, keep_top_k=4)  # see PicoDet
        return boxes, scores, out, count
