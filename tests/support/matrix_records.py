"""Rows for out/conformance.json (the README support matrix), shared by the conformance and zoo runs."""
from __future__ import annotations


def artifact_record(model: str, source: str, result, art) -> dict:
    """One artifact of one converted bundle, as checked on this host; an ARM .nb that the conversion also
    ran on the emulated aarch64 board (Lite's ARM runtime built here) carries the board's verdict."""
    worst = art.worst()
    record = {"model": model, "source": source, "target": result.target, "artifact": art.file,
              "status": art.status, "reason": art.reason, "device": "host",
              "max_abs": worst.max_abs if worst else None, "max_rel": worst.max_rel if worst else None,
              "cosine": worst.cosine if worst else None,
              "translated": result.manifest.source.get("translated", False),
              "warnings": result.report.get("warnings", [])}
    board = board_result(result, art.file)
    if board is not None:
        record.update(board_record(board))
    return record


def board_result(result, file: str):
    """The emulated board's verdict on ``file`` recorded by the conversion, or None."""
    return (result.report.get("emulated_verification") or {}).get(file)


def board_record(board) -> dict:
    outs = [o for o in board["outputs"] if o.get("max_rel") is not None]
    worst = max(outs, key=lambda o: float(o["max_rel"])) if outs else {}
    return {"status": board["status"], "reason": board["reason"], "device": "emulated-aarch64",
            "max_abs": worst.get("max_abs"), "max_rel": worst.get("max_rel"), "cosine": worst.get("cosine")}
