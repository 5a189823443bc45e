"""Upstream zoo: model families built from the upstream projects' own model code (installed from PyPI).

Each family names the upstream package that carries it, the import and constructor of its architecture,
how the upstream export tool wraps it, the ``input_spec`` its export config uses (None = dynamic) and the
concrete shape the tests feed. The code of the families is never copied here: ``export.py`` imports it in
a virtual environment of its own (``venv.py``), because the upstream packages pin versions (numpy,
opencv, huggingface-hub...) that must not enter the project's environment.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Family:
    package: str            # the PyPI distribution that carries the architecture
    module: str             # the module imported from it
    builder: str            # "ctor" -> the constructor call, evaluated in ``module``'s namespace
    wrap: str               # how the upstream export tool wraps the layer: "softmax", "first", "detector"[-nonms]
    inputs: tuple           # (name, input_spec shape with None for dynamic dims, dtype, concrete shape, low, high)
    note: str = ""
    legacy: bool = field(default=False)


# input_spec shapes follow the upstream export tools:
# - PaddleClas tools/export_model.py: [None] + Global.image_shape ([3, 224, 224]; the text-line
#   orientation classifier of PaddleX uses [3, 80, 160]); the output passes through softmax (Infer.PostProcess).
# - PaddleSeg tools/export.py without --input_shape: [None, 3, None, None]; --output_op none keeps the logits.
# - PaddleDetection tools/export_model.py: image [None, 3, H, W] at the TestReader's image_shape, scale_factor
#   [None, 2]; the exported program ends in the post-process and NMS and returns (bbox, bbox_num).
# - PaddleNLP ERNIE export (model_zoo/ernie-3.0/export_model.py): input_ids, token_type_ids [None, None] int64.
# configs/picodet/picodet_s_320_coco_lcnet.yml as ppdet.modeling builds it (both PicoDet families)
PICODET_S_320_LCNET = (
    "PicoDet(backbone=(b := LCNet(scale=0.75, feature_maps=[3, 4, 5])), "
    "neck=(n := LCPAN(in_channels=[s.channels for s in b.out_shape], out_channels=96, use_depthwise=True, "
    "num_features=4)), "
    "head=PicoHeadV2(conv_feat=PicoFeat(feat_in=96, feat_out=96, num_convs=2, num_fpn_stride=4, norm_type='bn', "
    "share_cls_reg=True, use_se=True), fpn_stride=[8, 16, 32, 64], feat_in_chan=96, prior_prob=0.01, "
    "reg_max=7, cell_offset=0.5, grid_cell_scale=5.0, use_align_head=True, static_assigner_epoch=100, "
    "loss_class=__import__('ppdet.modeling.losses.varifocal_loss', fromlist=['_']).VarifocalLoss(use_sigmoid=False, iou_weighted=True, loss_weight=1.0), "
    "loss_dfl=DistributionFocalLoss(loss_weight=0.5), loss_bbox=GIoULoss(loss_weight=2.5), "
    "static_assigner=ATSSAssigner(topk=9), assigner=TaskAlignedAssigner(topk=13, alpha=1.0, beta=6.0), "
    "nms=MultiClassNMS(nms_top_k=1000, keep_top_k=100, score_threshold=0.025, nms_threshold=0.6)))")

# configs/ppyoloe/ppyoloe_plus_crn_s_80e_coco.yml (_base_/ppyoloe_plus_crn.yml, depth_mult 0.33, width_mult 0.50;
# eval_size [640, 640] from _base_/ppyoloe_plus_reader.yml, shared with the head: its anchors are built once, at
# that size) as ppdet.modeling builds it. The config's norm_type sync_bn reaches only CustomCSPPAN, whose 2.6.0
# code never reads it (its ConvBNLayer is a BatchNorm2D). PaddleDetection 2.6's YOLOv3 architecture has no
# export_nms: `export.nms: False` leaves its NMS in; its own way out is the shared `-o exclude_nms=True`
# (PPYOLOEHead.exclude_nms), which returns the scaled boxes and the class scores.
def ppyoloe_plus_crn_s(exclude_nms: bool) -> str:
    return (
        "YOLOv3(backbone=(b := CSPResNet(layers=[3, 6, 6, 3], channels=[64, 128, 256, 512, 1024], "
        "return_idx=[1, 2, 3], use_large_stem=True, use_alpha=True, depth_mult=0.33, width_mult=0.50)), "
        "neck=(n := CustomCSPPAN(in_channels=[s.channels for s in b.out_shape], out_channels=[768, 384, 192], "
        "stage_num=1, block_num=3, act='swish', spp=True, depth_mult=0.33, width_mult=0.50)), "
        "yolo_head=PPYOLOEHead(in_channels=[s.channels for s in n.out_shape], fpn_strides=[32, 16, 8], "
        "grid_cell_scale=5.0, grid_cell_offset=0.5, static_assigner_epoch=30, use_varifocal_loss=True, "
        "loss_weight={'class': 1.0, 'iou': 2.5, 'dfl': 0.5}, static_assigner=ATSSAssigner(topk=9), "
        "assigner=TaskAlignedAssigner(topk=13, alpha=1.0, beta=6.0), "
        "nms=MultiClassNMS(nms_top_k=1000, keep_top_k=300, score_threshold=0.01, nms_threshold=0.7), "
        f"eval_size=[640, 640], exclude_nms={exclude_nms}), post_process=None)")


FAMILIES = {
    "ppcls_pplcnetv2_base": Family(
        "paddleclas", "ppcls.arch.backbone.legendary_models.pp_lcnet_v2", "PPLCNetV2_base(class_num=1000)",
        "softmax", (("x", [None, 3, 224, 224], "float32", [1, 3, 224, 224], -1.0, 1.0),)),
    "ppcls_pphgnetv2_b0": Family(
        "paddleclas", "ppcls.arch.backbone.legendary_models.pp_hgnet_v2", "PPHGNetV2_B0(class_num=1000)",
        "softmax", (("x", [None, 3, 224, 224], "float32", [1, 3, 224, 224], -1.0, 1.0),)),
    "ppcls_pplcnet_x0_25_textline_ori": Family(
        "paddleclas", "ppcls.arch.backbone.legendary_models.pp_lcnet", "PPLCNet_x0_25(class_num=2)",
        "softmax", (("x", [None, 3, 80, 160], "float32", [1, 3, 80, 160], -1.0, 1.0),),
        note="PP-LCNet_x0_25 at the text-line orientation classifier's shape"),
    "ppcls_pplcnet_x1_0_doc_ori": Family(
        "paddleclas", "ppcls.arch.backbone.legendary_models.pp_lcnet", "PPLCNet_x1_0(class_num=4)",
        "softmax", (("x", [None, 3, 224, 224], "float32", [1, 3, 224, 224], -1.0, 1.0),),
        note="PP-LCNet_x1_0 as the document orientation classifier (4 classes)"),
    "ppcls_pphgnet_tiny": Family(
        "paddleclas", "ppcls.arch.backbone.legendary_models.pp_hgnet", "PPHGNet_tiny(class_num=1000)",
        "softmax", (("x", [None, 3, 224, 224], "float32", [1, 3, 224, 224], -1.0, 1.0),)),
    "paddleseg_ppliteseg_stdc1": Family(
        "paddleseg", "paddleseg.models",
        "PPLiteSeg(num_classes=19, backbone=backbones.STDC1(), arm_out_chs=[32, 64, 128], "
        "seg_head_inter_chs=[32, 64, 64])",
        "first", (("x", [None, 3, None, None], "float32", [1, 3, 256, 256], -1.0, 1.0),),
        note="configs/pp_liteseg/pp_liteseg_stdc1_cityscapes_1024x512_scale0.5_160k.yml"),
    "paddleseg_ppmobileseg_base": Family(
        "paddleseg", "paddleseg.models",
        "PPMobileSeg(num_classes=150, backbone=backbones.MobileSeg_Base(inj_type='AAMSx8', out_feat_chs=[64, 128, 192]))",
        "first", (("x", [None, 3, None, None], "float32", [1, 3, 256, 256], -1.0, 1.0),),
        note="configs/pp_mobileseg/pp_mobileseg_base_ade20k_512x512_80k.yml (upsample 'intepolate': 'vim' gathers a data-dependent channel set)"),
    "ppdet_picodet_s_320_lcnet": Family(
        "paddledet", "ppdet.modeling",
        PICODET_S_320_LCNET,
        "detector", (("image", [None, 3, 320, 320], "float32", [1, 3, 320, 320], -1.0, 1.0),
                     ("scale_factor", [None, 2], "float32", [1, 2], 1.0, 1.0)),
        note="configs/picodet/picodet_s_320_coco_lcnet.yml, with its NMS (export_post_process, export_nms)"),
    "ppdet_picodet_s_320_lcnet_nonms": Family(
        "paddledet", "ppdet.modeling",
        PICODET_S_320_LCNET,
        "detector-nonms", (("image", [None, 3, 320, 320], "float32", [1, 3, 320, 320], -1.0, 1.0),),
        note="the same, exported with export.nms: False (raw boxes and scores, the NMS left to the app; "
             "scale_factor is then unused and pruned from the input_spec, as its export tool does)"),
    # TestReader: image_shape [3, 640, 640]; NormalizeImage with norm_type none only scales to [0, 1]
    "ppdet_ppyoloe_plus_crn_s": Family(
        "paddledet", "ppdet.modeling",
        ppyoloe_plus_crn_s(exclude_nms=False),
        "detector", (("image", [None, 3, 640, 640], "float32", [1, 3, 640, 640], 0.0, 1.0),
                     ("scale_factor", [None, 2], "float32", [1, 2], 1.0, 1.0)),
        note="configs/ppyoloe/ppyoloe_plus_crn_s_80e_coco.yml, with its NMS (RepVGG blocks fused by "
             "convert_to_deploy, as its export tool does)"),
    "ppdet_ppyoloe_plus_crn_s_nonms": Family(
        "paddledet", "ppdet.modeling",
        ppyoloe_plus_crn_s(exclude_nms=True),
        "detector-nonms", (("image", [None, 3, 640, 640], "float32", [1, 3, 640, 640], 0.0, 1.0),
                           ("scale_factor", [None, 2], "float32", [1, 2], 1.0, 1.0)),
        note="the same, exported without its NMS as PaddleDetection 2.6 does for this architecture "
             "(-o exclude_nms=True: boxes [N, 8400, 4] divided by scale_factor, which stays an input, and class "
             "scores [N, 80, 8400])"),
    "paddlenlp_ernie3_tiny": Family(
        "paddlenlp", "paddlenlp.transformers",
        "ErnieForSequenceClassification(ErnieConfig(vocab_size=40000, hidden_size=312, num_hidden_layers=4, "
        "num_attention_heads=12, intermediate_size=1248, max_position_embeddings=2048, type_vocab_size=16, "
        "hidden_act='gelu', hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1, num_labels=2))",
        "first", (("input_ids", [None, None], "int64", [1, 32], 1, 40000),
                  ("token_type_ids", [None, None], "int64", [1, 32], 0, 1)),
        note="ernie-3.0-tiny-medium-v2-zh sizes (4 layers, hidden 312)"),
}
