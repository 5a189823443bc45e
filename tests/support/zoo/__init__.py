"""A zoo of compact models of the layer families users deploy, written for wherry's tests.

Each module builds one family's characteristic layer mix at a small size (the architectures follow
the public descriptions of PP-OCR, PP-LCNet, PP-HGNet, PicoDet / PP-YOLOE, PP-LiteSeg, ERNIE and
RNN text models; no code is taken from those projects). ``FAMILIES`` maps a zoo name to
``(module, class name, inputs)`` with inputs as ``(name, shape, dtype, low, high)``; ``export.py``
writes them in PIR or legacy format, weights drawn He-normal so outputs are informative.
"""

F32, I64 = "float32", "int64"

FAMILIES = {
    "ppocr_det": ("ocr", "OcrDet", [("x", [1, 3, 64, 64], F32, -1.0, 1.0)]),
    "ppocr_rec": ("ocr", "OcrRec", [("x", [1, 3, 32, 96], F32, -1.0, 1.0)]),
    "pplcnet": ("cls", "LCNet", [("x", [1, 3, 64, 64], F32, -1.0, 1.0)]),
    "pphgnet": ("cls", "HGNet", [("x", [1, 3, 64, 64], F32, -1.0, 1.0)]),
    "picodet": ("det", "PicoDet", [("image", [1, 3, 64, 64], F32, -1.0, 1.0)]),
    "ppyolo": ("det", "PPYolo", [("image", [1, 3, 64, 64], F32, -1.0, 1.0)]),
    "ppliteseg": ("seg", "LiteSeg", [("x", [1, 3, 64, 64], F32, -1.0, 1.0)]),
    "ernie_tiny": ("nlp", "ErnieTiny", [("input_ids", [2, 16], I64, 0, 50)]),
    "rnn_text": ("nlp", "RnnText", [("input_ids", [2, 12], I64, 0, 50)]),
    "control_flow": ("flow", "ControlFlow", [("x", [1, 3, 16, 16], F32, -1.0, 1.0)]),
}
