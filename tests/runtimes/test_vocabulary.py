"""The vocabulary's verdicts read as the plain words users and JSON see, wherever they are shown."""
from __future__ import annotations

import json

from wherry.runtimes.vocabulary import PRECISIONS, QUANTIZED, Verdict


def test_a_verdict_is_its_word_in_print_json_and_dicts():
    assert Verdict.PASSED == "passed" and Verdict("not verifiable here") is Verdict.NOT_VERIFIABLE
    assert f"{Verdict.FAILED}" == str(Verdict.FAILED) == "failed"
    assert repr([("model.onnx", Verdict.PASSED)]) == "[('model.onnx', 'passed')]"   # what print(list) shows
    assert json.dumps({"verdict": Verdict.PARTLY_VERIFIED}) == '{"verdict": "partly verified"}'
    assert {Verdict.NOT_BUILT: 1}["not built"] == 1 and "failed" in set(Verdict)


def test_each_verdict_has_its_labels_and_the_worst_ranks_first():
    assert [v.label for v in (Verdict.PASSED, Verdict.FAILED, Verdict.PARTLY_VERIFIED)] == \
        ["PASS", "FAIL", "PARTLY VERIFIED"]
    assert all(v.label and v.cell and v.mark for v in Verdict)
    assert min(Verdict, key=lambda v: v.rank) is Verdict.FAILED and Verdict.PASSED.rank == len(Verdict) - 1


def test_precisions_table_orders_and_describes_each():
    assert list(PRECISIONS)[0] == "fp32" and "fp32" not in QUANTIZED
    assert PRECISIONS["int8-weight"].weight_bits == 8 and PRECISIONS["int16-weight"].lite_quant_type == "QUANT_INT16"
    assert all(p.rtol > 0 and 0 < p.min_cosine <= 1 for p in PRECISIONS.values())
