"""The terminal table every report prints (check, the zoo matrix, fleet, quantization): columns padded to
their widest cell, two spaces apart, a rule under the header row."""
from __future__ import annotations

from typing import List, Sequence


def table_lines(rows: Sequence[Sequence[str]]) -> List[str]:
    """The header row, its rule and the other rows, as lines without trailing spaces."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines
