"""The upstream zoo: families built from the upstream projects' own model code, through the real pipeline.

Each family in tests/upstream/ is imported from its PyPI package (PaddleClas, PaddleSeg, PaddleNLP) in a
virtual environment of its own (tests/upstream/venv.py, cached outside the checkout), given random
He-normal weights at its real sizes, and saved with paddle.jit.save and the input_spec its upstream
export tool uses (dynamic dims None): PIR, as Paddle 3.3.1 exports by default, and legacy
(FLAGS_enable_pir_api=0) where Paddle 3.3.1 still exports it. Each export is then converted with the
wherry CLI as a user would (``wherry convert model.json -t desktop-x86_64 --shape ...``).

Every artifact must pass, or fail exactly as KNOWN records (the located op / tool message), so a fix
or a new regression both show. One record per family and artifact goes to out/upstream.json.
Slow (a venv of its own, ~1 min per family): ``-m zoo`` only.
"""
from __future__ import annotations

import hashlib
import json
import subprocess

import pytest

from conftest import REPO
from upstream import FAMILIES, venv

pytestmark = pytest.mark.zoo

RESULTS = REPO / "out" / "upstream.json"
TARGET = "desktop-x86_64"
ARTIFACTS = ("model.onnx", "model.x86.nb")
# (family, format, artifact) -> a phrase of the recorded reason: a measured failure, kept honest both ways
KNOWN: dict = {}
_records = []


def exported(fmt: str, name: str):
    """The family exported in ``fmt`` by the upstream venv (cached by venv + export code)."""
    code = b"".join((REPO / "tests" / "upstream" / f).read_bytes() for f in ("__init__.py", "export.py"))
    folder = venv.cache_root() / "upstream-zoo" / f"{venv.key()}-{hashlib.sha256(code).hexdigest()[:10]}" / fmt
    if not ((folder / name / "inputs.npz").is_file() or (folder / name / "export_error.txt").is_file()):
        subprocess.run([str(venv.python()), str(REPO / "tests" / "upstream" / "export.py"), fmt, str(folder), name],
                       check=True, capture_output=True, cwd=REPO / "tests")
    return folder / name


@pytest.fixture(scope="module", autouse=True)
def record_results():
    yield
    if not _records:
        return
    RESULTS.parent.mkdir(exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.is_file() else []
    keys = {(r["model"], r["format"]) for r in _records}
    kept = [r for r in previous if (r["model"], r["format"]) not in keys]
    RESULTS.write_text(json.dumps(kept + _records, indent=2) + "\n")


def convert_args(name, folder):
    """--shape for an image input with dynamic dims (seeded random goldens); token ids (they must stay inside
    the vocabulary) and a detector's scale_factor (1.0, not noise) are fed from the export's inputs.npz."""
    family = FAMILIES[name]
    if len(family.inputs) > 1 or any(dtype.startswith("int") for _, _, dtype, _, _, _ in family.inputs):
        return ["--inputs", folder / "inputs.npz"]
    args = []
    for input_name, spec, _, shape, _, _ in family.inputs:
        if None in spec:
            args += ["--shape", f"{input_name}={','.join(map(str, shape))}"]
    return args


def record(name, fmt, **fields):
    family = FAMILIES[name]
    _records.append({"model": f"upstream/{name}", "format": fmt, "package": family.package,
                     "import": family.module, "builder": family.builder,
                     "input_spec": {n: s for n, s, *_ in family.inputs}, **fields})


def worst_output(artifact):
    outs = [o for o in artifact.get("outputs", []) if o.get("max_abs") is not None]
    if not outs:
        return {}
    worst = min(outs, key=lambda o: o.get("cosine") if o.get("cosine") is not None else 1.0)
    return {"max_abs": max(o["max_abs"] for o in outs), "cosine": worst.get("cosine")}


@pytest.mark.parametrize("fmt", ["pir", "legacy"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_upstream_family(name, fmt, wherry, tmp_path):
    folder = exported(fmt, name)
    error = folder / "export_error.txt"
    if error.is_file():
        reason = f"Paddle 3.3.1 could not export it ({fmt}): {error.read_text().strip()}"
        record(name, fmt, artifact=None, verdict="not exported", reason=reason)
        pytest.skip(reason)
    model = folder / ("model.json" if fmt == "pir" else "model.pdmodel")
    proc = wherry("convert", model, "-t", TARGET, "-o", tmp_path, "--name", name, "--json",
                  *convert_args(name, folder))
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        message = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        record(name, fmt, artifact=None, verdict="convert failed", reason=f"exit {proc.returncode}: {message}")
        raise AssertionError(f"wherry convert printed no JSON (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    bundle = doc["bundles"][0]
    checked = {a["file"]: a for a in bundle["report"]["verification"]["artifacts"]}
    not_built = {nb.get("file", ""): nb for nb in bundle["report"].get("not_built", [])}
    verdicts = {}
    for file in ARTIFACTS:
        if file in checked:
            art = checked[file]
            verdicts[file] = (art["status"], art["reason"])
            record(name, fmt, artifact=file, verdict=art["status"], reason=art["reason"], **worst_output(art))
        else:
            why = json.dumps(not_built.get(file)) if file in not_built else \
                "; ".join(w for w in bundle["warnings"] if file.split(".")[-1] in w or "no .nb" in w) or "not built"
            verdicts[file] = ("not built", why)
            record(name, fmt, artifact=file, verdict="not built", reason=why)
    for file, (status, reason) in verdicts.items():
        known = KNOWN.get((name, fmt, file))
        if known is None:
            assert status == "passed", f"{file}: {status}: {reason}"
        else:
            assert status != "passed", f"{file} now passes: drop its KNOWN entry ({known!r})"
            assert known in reason, f"{file}: {status}: {reason} (KNOWN expects {known!r})"
