"""Run the reference and an artifact with their intermediate tensors exposed.

Each run happens in an isolated child (``open_session(..., isolate=True)``), like every other run of
Paddle, Paddle Lite or ONNX Runtime in wherry: a native crash of a debug build never takes wherry down.
A caller may pass a child it started ahead (``SharedChild.prewarm``): its interpreter start and library
import (Paddle's alone is ~0.9 s) then overlap with the caller's own work.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

import numpy as np

from wherry.runtimes.session import open_session
from wherry.runtimes.isolate import SharedChild

from . import program as program_io

if TYPE_CHECKING:
    from onnx import NodeProto

log = logging.getLogger(__name__)


def paddle_tensors(model_file: Path, params_file: Path, feeds, work: Path,
                   names: Optional[List[str]] = None, child: Optional[SharedChild] = None) -> Dict[str, np.ndarray]:
    """The program's outputs and the intermediate tensors ``names`` (default: every one), from Paddle
    Inference (the reference); in ``child`` when given (one started ahead, that imported Paddle already)."""
    model, params, _ = program_io.tapped_copy(model_file, params_file, work / "paddle-tapped", names)
    with open_session(str(model), isolate=True, child=child) as session:
        return program_io.untapped(session.run(feeds))


def lite_tensors(model_file: Path, params_file: Path, feeds, work: Path, place: str = "x86",
                 device: Optional[str] = None, names: Optional[List[str]] = None, last_op: Optional[int] = None,
                 kernels: bool = True, child: Optional[SharedChild] = None
                 ) -> Tuple[Dict[str, np.ndarray], List[str], str]:
    """The intermediate tensors ``names`` (default: every one) as Paddle Lite computes them in a debug .nb
    built for ``place`` (x86 here, or arm on ``device``, as for ``check --device``) from the program with
    those tensors fetched (only its ops up to ``last_op``, when given). Returns (tensors, fetched names
    Lite's optimizer removed anyway, the kernels opt chose for the debug build: "" without ``kernels``,
    which saves opt its verbose log)."""
    from wherry.convert import lite_export

    model, params, fetched = program_io.tapped_copy(model_file, params_file, work / "lite-tapped", names, last_op)
    nb = work / f"debug.{place}.nb"
    built = lite_export.export_nb(model, params, nb, [place], verbose=kernels)
    if device and device != "local":
        tensors = _run_on_device(device, nb, feeds, work)
    else:
        with open_session(str(nb), isolate=True, child=child) as session:
            tensors = session.run(feeds)
    removed = [n for n in fetched if n not in tensors]
    return program_io.untapped(tensors), removed, built.describe() if kernels else ""


def onnx_graph(onnx_file: Path):
    import onnx

    return onnx.load(str(onnx_file)).graph


def onnx_node_outputs(graph) -> set:
    """Every tensor a node of the graph computes (constants aside): what ``onnx_tensors`` can expose."""
    constants = {i.name for i in graph.initializer} | {o for n in graph.node if n.op_type == "Constant"
                                                        for o in n.output}
    return {name for node in graph.node for name in node.output if name and name not in constants}


def onnx_subgraph_outputs(graph) -> Dict[str, "NodeProto"]:
    """Tensors computed inside the If branches and Loop bodies of the graph's own nodes (one level deep:
    where paddle2onnx puts a Paddle sub-block's ops) -> the If or Loop node."""
    found = {}
    for node in graph.node:
        if node.op_type not in ("If", "Loop"):
            continue
        for attr in node.attribute:
            if attr.g.node:
                found.update({name: node for name in onnx_node_outputs(attr.g)})
    return found


# a Loop body's tapped tensor comes out as a scan output (one slice per iteration): its last is compared
_LAST_ITERATION = "@wherry_tap_loop"
_ONNX_DTYPES = {"fp32": "FLOAT", "fp16": "FLOAT16", "fp64": "DOUBLE", "bf16": "BFLOAT16"}


def _expose_in_subgraphs(graph, inner: Dict[str, str]) -> None:
    """Make the subgraph tensors ``inner`` (name -> Paddle dtype) outputs of the main graph. ONNX Runtime returns
    graph outputs only, and a subgraph's values stay inside its If or Loop node, so each is passed out: from an
    If branch as one more output of the If (the other branch gives a one-NaN filler, dropped when that
    branch ran, as for Lite's sub-block twins), from a Loop body as one more scan output (its last slice)."""
    from onnx import TensorProto, ValueInfoProto, helper

    from . import program as program_io

    owner = onnx_subgraph_outputs(graph)
    for name, dtype in inner.items():
        node = owner[name]
        branches = {a.name: a.g for a in node.attribute if a.g.node}
        if node.op_type == "Loop":
            branches["body"].output.append(ValueInfoProto(name=name))
            tap = name + _LAST_ITERATION
        else:
            tap = name + program_io.TAP_SUFFIX
            elem = getattr(TensorProto, _ONNX_DTYPES.get(dtype, "FLOAT"))
            for branch in branches.values():
                if name in onnx_node_outputs(branch):
                    branch.output.append(ValueInfoProto(name=name))
                else:
                    filler = f"{name}@wherry_filler"
                    branch.node.append(helper.make_node("Constant", [], [filler], value=helper.make_tensor(
                        filler, elem, [1], [float("nan")])))
                    branch.output.append(ValueInfoProto(name=filler))
        node.output.append(tap)
        graph.output.append(ValueInfoProto(name=tap))


def _untap_subgraphs(values: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    from . import program as program_io

    result = {}
    for name, value in values.items():
        if name.endswith(_LAST_ITERATION):
            if not len(value):      # the loop ran no iteration
                continue
            name, value = name[:-len(_LAST_ITERATION)], value[-1]
        result[name] = value
    return program_io.untapped(result)


def onnx_tensors(onnx_file: Path, feeds, work: Path, device: Optional[str] = None,
                 names: Optional[set] = None, child: Optional[SharedChild] = None,
                 inner: Optional[Dict[str, str]] = None) -> Tuple[Dict[str, np.ndarray], "object"]:
    """The graph outputs and the node outputs ``names`` (default: every one, the way Polygraphy marks all
    tensors as outputs) of an ONNX model, and the tensors ``inner`` (name -> Paddle dtype) computed inside
    its If branches and Loop bodies (``onnx_subgraph_outputs``): returns the tensors and the ONNX graph (for
    mapping tensors by producing node). ``device`` (as for ``check --device``) runs the exposed model there
    instead of on this host."""
    import onnx

    model = onnx.load(str(onnx_file))
    graph = model.graph
    if inner:
        _expose_in_subgraphs(graph, inner)
    exposable = onnx_node_outputs(graph)
    present = {o.name for o in graph.output}
    for node in graph.node:
        for name in node.output:
            if name in exposable and name not in present and (names is None or name in names):
                # a graph output without a type: ONNX Runtime fills it in from its own inference
                graph.output.append(onnx.ValueInfoProto(name=name))
                present.add(name)
    log.info("%s: %d graph outputs with every node output exposed", onnx_file, len(graph.output))
    work.mkdir(parents=True, exist_ok=True)
    exposed = work / "exposed.onnx"
    onnx.save(model, str(exposed))
    feeds = {k: v for k, v in feeds.items() if k in {i.name for i in graph.input}}
    if device and device != "local":
        return _untap_subgraphs(_run_on_device(device, exposed, feeds, work)), graph
    with open_session(str(exposed), isolate=True, child=child) as session:
        tensors = session.run(feeds)
    return _untap_subgraphs(tensors), graph


def _run_on_device(device: str, model: Path, feeds, work: Path) -> Dict[str, np.ndarray]:
    """The runner's own `run` command on the device (the connection `check --device` uses): an exposed
    ONNX model or a debug .nb."""
    from wherry.runtimes.errors import WherryError
    from wherry.runtimes.npz import load_npz
    from wherry.targets.devices import connect

    inputs, out = work / "feeds.npz", work / "device-out.npz"
    np.savez(inputs, **feeds)
    result = connect(device).run(["run", str(model), "--inputs", str(inputs), "--out", str(out), "--isolate"],
                                 [model])
    if result.exit_code != 0 or not out.is_file():
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise WherryError(f"the exposed model {model.name} did not run on {device}: {' | '.join(tail)}",
                          "check that `wherry check BUNDLE --device ...` works for this device")
    return load_npz(out)
