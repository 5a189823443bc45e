"""The terminal form of a debug report."""
from __future__ import annotations

from typing import List

from .locate import CRASHED, DIVERGED, HEALTHY


def metrics(p) -> str:
    if p is None:
        return "not matched in the artifact"
    if p.max_abs is None:
        return p.reason
    return (f"max abs {p.max_abs:.3g} (rel {p.max_rel:.3g}), cosine {p.cosine:.6f}, SNR {p.snr_db:.1f} dB"
            + ("" if p.passed else "  LEAVES TOLERANCE"))


def _tensor_line(prefix: str, check) -> str:
    other = f" = {check.artifact_name}" if check.artifact_name and check.artifact_name != check.name else ""
    if check.how == "feed":
        return f"  {prefix} {check.name}: model input (the same golden input on both sides)"
    return f"  {prefix} {check.name}{other}: {metrics(check.parity)}"


def _culprit(head: str, f, crashed: bool) -> List[str]:
    """The op an artifact leaves the reference at (or, ``crashed``, dies in): its tensors, attributes, verdict."""
    lines = [f"{head}: {'crashes at' if crashed else 'first divergence at'} op {f.label()} [{f.artifact_node}]"]
    lines += [_tensor_line("output", t) for t in f.outputs]
    lines += [_tensor_line("input ", t) for t in f.inputs]
    attrs = ", ".join(f"{k}={v!r}" for k, v in f.attrs.items() if not isinstance(v, list) or len(v) <= 8)
    if attrs:
        lines.append(f"  attributes (reference program): {attrs[:300]}")
    ok_inputs = all(t.how == "feed" or (t.parity is not None and t.parity.passed) for t in f.inputs)
    if not ok_inputs:
        lines.append("  an input differs or could not be matched: the cause may be upstream")
    elif not crashed:
        lines.append("  inputs within tolerance, output not: this op is where the artifact goes wrong")
    else:
        lines.append("  inputs within tolerance, and Lite dies in this op: the op (or its kernel) is the cause"
                     if f.inputs else "  Lite dies in this op, which reads no tensor: the op (its attributes) is the cause")
    return lines


def text(report) -> str:
    against = report.model or "the program the bundle keeps"
    lines: List[str] = [f"debug {report.name} ({report.bundle}) against {against}"]
    lines += [f"  {note}" for note in report.reference_notes]
    for art in report.artifacts:
        head = f"{art.file} ({art.format}, {art.precision})"
        if art.status in (DIVERGED, CRASHED):
            lines += _culprit(head, art.first, crashed=art.status == CRASHED)
        elif art.status == HEALTHY:
            worst = max((f for f in art.ops if f.worst() is not None and f.worst().max_rel is not None),
                        key=lambda f: f.worst().max_rel, default=None)
            tail = f"; largest relative error {worst.worst().max_rel:.2g} at {worst.label()}" if worst else ""
            lines.append(f"{head}: no divergence ({len(art.ops)} ops compared{tail})")
        else:
            lines.append(f"{head}: {art.status}: {art.reason}")
            continue
        if art.quantized and art.ops:
            lines.append("  most damaged layers (lowest SNR):")
            lines += [f"    {f.label()}: {metrics(f.worst())}" for f in art.damage(5)]
        if art.unmatched:
            shown = ", ".join(art.unmatched[:8]) + (f" (+{len(art.unmatched) - 8} more)" if len(art.unmatched) > 8 else "")
            lines.append(f"  {len(art.unmatched)} tensor(s) not matched in the artifact: {shown}")
        if art.removed:
            lines.append(f"  removed by the tool's fusions despite being fetched: {', '.join(art.removed[:8])}")
        if art.reason and art.status != "not supported":
            lines.append(f"  note: {art.reason}")
        lines.append(f"  ({art.seconds:.1f} s)")
    return "\n".join(lines)
