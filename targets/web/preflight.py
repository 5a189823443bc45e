"""`wherry inspect model.onnx|BUNDLE -t web`: which ops of an ONNX artifact onnxruntime-web runs, per
execution provider, before any browser starts.

Sources, both read from what is installed rather than written down here (Constant nodes become
initializers at load, and ONNX function ops without a kernel, e.g. HardSwish, are expanded into their
bodies: neither needs a kernel):

* WebGPU: the operator table onnxruntime-web ships in its npm package (``docs/webgpu-operators.md``,
  generated upstream from the WebGPU kernel definitions). Ops not in it run on the WebAssembly CPU
  fallback: correct, but each one costs a copy between GPU and CPU.
* WebAssembly: onnxruntime-web's WASM backend is ONNX Runtime's CPU execution provider compiled to
  WebAssembly, so its kernels are the CPU kernel registry of ONNX Runtime; it is read from the native
  onnxruntime installed here (``get_all_opkernel_def``). Versions differ (the pinned web build is
  newer), so a "supported" here is a strong hint and `wherry check --device browser` the proof.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import Dict, List, Tuple, TypedDict

from wherry.runtimes.bundle import is_bundle, load_bundle
from wherry.runtimes.errors import InputError

from . import ortweb

Ranges = Dict[Tuple[str, str], List[Tuple[int, float]]]   # (domain, op) -> [(first, last)] kernel versions
ONNX_DOMAINS = ("", "ai.onnx")


class OpRow(TypedDict):
    """One op kind of an artifact in ``inspect``'s report: its count and its support on each execution provider."""

    op: str
    domain: str
    since_version: int
    count: int
    wasm: str      # kernel | load-time | function | none (_support)
    webgpu: str


def _domain(name: str) -> str:
    return "" if name in ONNX_DOMAINS else name


def onnx_files(path: str) -> List[Path]:
    target = Path(path)
    if target.is_dir() and is_bundle(target):
        bundle = load_bundle(target)
        files = [bundle.path(a) for a in bundle.manifest.artifacts if a.format == "onnx"]
        if not files:
            raise InputError(f"{path} has no ONNX artifact: nothing a browser could run",
                             "convert with -t web (or any target with ONNX artifacts)")
        return [Path(f) for f in files]
    if target.suffix == ".onnx" and target.is_file():
        return [target]
    raise InputError(f"{path} is not an .onnx file or a bundle", "pass a bundle directory or an .onnx file")


# Nodes ONNX Runtime resolves while loading, with no kernel: Constant becomes an initializer.
LOAD_TIME_OPS = {("", "Constant")}


def _is_function(domain: str, op: str, version: int) -> bool:
    """An ONNX function op (e.g. HardSwish): ONNX Runtime expands it into its body when no kernel exists."""
    from onnx import defs

    try:
        schema = defs.get_schema(op, version, domain)
    except defs.SchemaError:
        return False
    # has_function is missing from onnx's type stubs (onnx 1.23), though every OpSchema has it
    return bool(getattr(schema, "has_function") or getattr(schema, "has_context_dependent_function", False))


def model_ops(path: Path) -> Dict[Tuple[str, str, int], int]:
    """(domain, op, the op's since-version under the model's opset imports) -> count, subgraphs included."""
    import onnx
    from onnx import defs

    model = onnx.load(str(path), load_external_data=False)
    opsets = {_domain(o.domain): o.version for o in model.opset_import}
    counts: Counter = Counter()

    def walk(graph):
        for node in graph.node:
            domain = _domain(node.domain)
            version = opsets.get(domain, 1)
            try:  # the kernel that runs a node is the one registered for its schema's since-version
                version = defs.get_schema(node.op_type, version, node.domain or "").since_version
            except defs.SchemaError:  # a domain onnx has no schemas for (com.microsoft): the opset itself
                pass
            counts[(domain, node.op_type, version)] += 1
            for attr in node.attribute:
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    walk(sub)

    walk(model.graph)
    return dict(counts)


def wasm_kernels() -> Tuple[Ranges, str]:
    import onnxruntime
    from onnxruntime.capi import onnxruntime_pybind11_state as native

    ranges: Ranges = {}
    for kernel in native.get_all_opkernel_def():
        if kernel.provider != "CPUExecutionProvider":
            continue
        first, last = kernel.version_range
        ranges.setdefault((_domain(kernel.domain), kernel.op_name), []).append(
            (first, math.inf if last >= 2 ** 31 - 1 else last))
    return ranges, f"CPU kernel registry of native onnxruntime {onnxruntime.__version__}"


_ROW = re.compile(r"^\|\s*([A-Za-z0-9_]+)\s*\|\s*([^|]*)\|")
_SPEC = re.compile(r"([A-Za-z0-9_.]+)\(([^)]*)\)")


def webgpu_kernels() -> Tuple[Ranges, str]:
    table = ortweb.package_dir() / "docs" / "webgpu-operators.md"
    ranges: Ranges = {}
    for line in table.read_text().splitlines():
        row = _ROW.match(line)
        if not row or row.group(1) == "Operator":
            continue
        for domain, spans in _SPEC.findall(row.group(2)):
            if domain == "com.ms.internal.nhwc":  # ORT's internal layout-transformed copies of ai.onnx ops
                continue
            for span in spans.split(","):
                span = span.strip()
                if span.endswith("+"):
                    ranges.setdefault((_domain(domain), row.group(1)), []).append((int(span[:-1]), math.inf))
                elif "-" in span:
                    first, last = span.split("-")
                    ranges.setdefault((_domain(domain), row.group(1)), []).append((int(first), int(last)))
                elif span:
                    ranges.setdefault((_domain(domain), row.group(1)), []).append((int(span), int(span)))
    return ranges, f"{table.name} of onnxruntime-web {ortweb.VERSION}"


def _support(ranges: Ranges, domain: str, op: str, version: int) -> str:
    """kernel | load-time | function (expanded into ops that have kernels, as a rule) | none"""
    if any(first <= version <= last for first, last in ranges.get((domain, op), ())):
        return "kernel"
    if (domain, op) in LOAD_TIME_OPS:
        return "load-time"
    if _is_function(domain, op, version):
        return "function"
    return "none"


def inspect(path: str) -> dict:
    wasm, wasm_source = wasm_kernels()
    webgpu, webgpu_source = webgpu_kernels()
    artifacts = []
    for model in onnx_files(path):
        rows: List[OpRow] = []
        for (domain, op, version), count in sorted(model_ops(model).items()):
            rows.append({"op": op, "domain": domain or "ai.onnx", "since_version": version, "count": count,
                         "wasm": _support(wasm, domain, op, version), "webgpu": _support(webgpu, domain, op, version)})
        artifacts.append({"file": model.name, "ops": rows,
                          "wasm_missing": sorted({r["op"] for r in rows if r["wasm"] == "none"}),
                          "webgpu_fallback": sorted({r["op"] for r in rows if r["webgpu"] == "none"}),
                          "expanded": sorted({r["op"] for r in rows if "function" in (r["wasm"], r["webgpu"])})})
    return {"model": str(path), "target": "web", "onnxruntime_web": ortweb.VERSION,
            "sources": {"wasm": wasm_source, "webgpu": webgpu_source}, "artifacts": artifacts}


def render(report: dict) -> str:
    lines = [f"model    {report['model']}  (target web: onnxruntime-web {report['onnxruntime_web']})"]
    for art in report["artifacts"]:
        ops = ", ".join(f"{r['op']}×{r['count']}" for r in art["ops"])
        lines.append(f"artifact {art['file']}: {sum(r['count'] for r in art['ops'])} ops: {ops}")
        wasm = ("all ops have a kernel" if not art["wasm_missing"] else
                "NO kernel for " + ", ".join(art["wasm_missing"]) + " (it will not load)")
        webgpu = ("all ops run on WebGPU" if not art["webgpu_fallback"] else
                  "on WebGPU except " + ", ".join(art["webgpu_fallback"]) + " (these fall back to the WASM CPU)")
        lines += [f"  wasm     {wasm}", f"  webgpu   {webgpu}"]
        if art["expanded"]:
            lines.append(f"  function {', '.join(art['expanded'])}: no kernel of its own; ONNX Runtime expands it "
                         "into its ONNX function body")
    lines += [f"source   {ep}: {source}" for ep, source in report["sources"].items()]
    lines.append("note     the proof is a run: wherry check BUNDLE --device browser[:webgpu]")
    return "\n".join(lines)
