"""Derive the table of what Paddle Lite's op parsers read (convert/lite_ops.json) from Lite's sources.

    python scripts/lite_op_table.py PADDLE_LITE_CHECKOUT   # at the tag the pinned paddlelite wheel was built from (v2.13-rc)

Lite parses each op in ``lite/operators/*.cc`` (``AttachImpl``): ``GetAttr<T>("name")`` reads an attribute
with a fixed C++ type (and aborts when the stored type differs), ``Input("X").front()`` /
``Output("Y").front()`` and ``AttachInput/AttachOutput(..., "Y", false, ...)`` dereference a slot that must
exist. A read not guarded by ``HasAttr("name")`` (on its line or the three above) is unconditional;
slots tested with ``HasInput``/``HasOutput`` anywhere in the file are optional. The table records,
per registered op type: attribute -> the AttrType Lite reads (INT, LONG, INTS, LONGS, FLOAT, ...) and whether
it reads it unconditionally; the input and output slots it requires. Legalization (convert/legalize.py)
satisfies this table. The parse is a heuristic over C++ text, so the table is committed and reviewed, not
generated at conversion time.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "convert" / "lite_ops.json"
CPP_TO_ATTR = {"int": "INT", "int32_t": "INT", "int64_t": "LONG", "float": "FLOAT", "double": "FLOAT64",
               "bool": "BOOLEAN", "std::string": "STRING", "std::vector<int>": "INTS",
               "std::vector<int32_t>": "INTS", "std::vector<int64_t>": "LONGS", "std::vector<float>": "FLOATS",
               "std::vector<double>": "FLOAT64S", "std::vector<std::string>": "STRINGS"}
GET_ATTR = re.compile(r'GetAttr<\s*([\w:<> ]+?)\s*>\s*\(\s*"(\w+)"\s*\)')
HAS_ATTR = re.compile(r'HasAttr\(\s*"(\w+)"\s*\)')
REGISTER = re.compile(r"REGISTER_LITE_OP\(\s*(\w+)\s*,")
TYPE_IS = re.compile(r'Type\(\)\s*==\s*"(\w+)"')
SLOT = re.compile(r'\b(Input|Output)\(\s*"(\w+)"\s*\)\s*\.front\(\)')
ATTACH = re.compile(r'Attach(Input|Output)\(\s*\w+\s*,\s*\w+\s*,\s*"(\w+)"\s*,\s*false')
HAS_SLOT = re.compile(r'Has(Input|Output)\(\s*"(\w+)"\s*\)')


def parse(text: str) -> dict:
    ops = REGISTER.findall(text)
    table = {op: {"attrs": {}, "inputs": [], "outputs": []} for op in ops}
    lines = text.splitlines()
    guarded_slots = {(kind.lower() + "s", name) for kind, name in HAS_SLOT.findall(text)}
    only = None  # op types of the `if (op_desc.Type() == "...")` branch we are in
    for number, line in enumerate(lines):
        # a read is guarded when HasAttr("name") tests it on the same line or just above
        guarded = set(HAS_ATTR.findall("\n".join(lines[max(0, number - 3):number + 1])))
        types = TYPE_IS.findall(line)
        if types:
            only = set(types) & set(ops) or None
        elif re.match(r"^  \}\s*$", line) or re.match(r"^\}", line):
            only = None  # end of a function-level if/else chain
        for cpp, name in GET_ATTR.findall(line):
            kind = CPP_TO_ATTR.get(" ".join(cpp.split()).replace("< ", "<"))
            if kind is None:
                continue
            for op in (only or ops):
                attrs = table[op]["attrs"]
                prev = attrs.get(name)
                if prev and prev["type"] != kind:
                    prev["type"] = "AMBIGUOUS"  # read with two widths: leave stored types alone
                elif not prev:
                    attrs[name] = {"type": kind, "unconditional": name not in guarded}
        for kind, name in SLOT.findall(line) + ATTACH.findall(line):
            slot = kind.lower() + "s"
            if (slot, name) in guarded_slots:
                continue
            for op in (only or ops):
                if name not in table[op][slot]:
                    table[op][slot].append(name)
    return table


def main(argv) -> int:
    if len(argv) != 1 or not (Path(argv[0]) / "lite" / "operators").is_dir():
        print(__doc__, file=sys.stderr)
        return 2
    table = {}
    for cc in sorted((Path(argv[0]) / "lite" / "operators").glob("*.cc")):
        header = cc.with_suffix(".h")  # some ops parse their attributes in the header
        text = cc.read_text(errors="replace") + ("\n" + header.read_text(errors="replace") if header.is_file() else "")
        for op, entry in parse(text).items():
            table.setdefault(op, entry)
    # one op per line: reviewable diffs when Lite changes
    lines = [f"  {json.dumps(op)}: {json.dumps(entry, sort_keys=True)}" for op, entry in sorted(table.items())]
    OUT.write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print(f"wrote {OUT}: {len(table)} op types")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
