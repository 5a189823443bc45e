"""Real models and bundles for the runtime tests: a tiny CNN exported by Paddle (legacy,
PIR and a 1.x directory), converted with paddle2onnx and Paddle Lite opt in child
processes, packed into bundles with runtimes.bundle.Manifest. Cached under
.cache/runtime-fixtures keyed by this file's content, so reruns are fast."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable

_EXPORT = textwrap.dedent('''
    import os, sys
    fmt, out = sys.argv[1], sys.argv[2]
    if fmt == "legacy":
        os.environ["FLAGS_enable_pir_api"] = "0"
    import paddle
    paddle.seed(0)

    class Net(paddle.nn.Layer):
        # No flatten (Paddle Lite x86 opt segfaults on flatten without XShape): reshape instead.
        def __init__(self):
            super().__init__()
            self.c1 = paddle.nn.Conv2D(3, 8, 3, padding=1)
            self.bn = paddle.nn.BatchNorm2D(8)
            self.c2 = paddle.nn.Conv2D(8, 16, 3, stride=2, padding=1)
            self.pool = paddle.nn.AdaptiveAvgPool2D(1)
            self.fc = paddle.nn.Linear(16, 10)

        def forward(self, x):
            y = paddle.nn.functional.relu(self.bn(self.c1(x)))
            y = paddle.nn.functional.relu(self.c2(y))
            y = paddle.reshape(self.pool(y), [-1, 16])
            logits = self.fc(y)
            return paddle.nn.functional.softmax(logits), logits

    net = Net()
    # Non-trivial batch-norm statistics, so the folded BN is really exercised.
    net.bn._mean.set_value(paddle.rand([8]) * 0.5)
    net.bn._variance.set_value(paddle.rand([8]) + 0.5)
    net.eval()
    paddle.jit.save(net, out + "/model",
                    input_spec=[paddle.static.InputSpec([None, 3, 16, 16], "float32", "x")])
''')

_CONVERT = textwrap.dedent('''
    import sys
    kind, model, params, out = sys.argv[1:5]
    if kind == "onnx":
        import paddle2onnx
        paddle2onnx.export(model, params, out, opset_version=13, enable_onnx_checker=True)
    else:
        from paddlelite.lite import Opt
        opt = Opt()
        opt.set_model_file(model)
        opt.set_param_file(params)
        opt.set_valid_places(kind)
        opt.set_model_type("naive_buffer")
        opt.set_optimize_out(out[:-3])
        opt.run()
''')

INPUT_SHAPE = (2, 3, 16, 16)


def _run(code: str, *args, env=None):
    # From a file, not -c: paddle.jit.save reads the Layer's source code.
    script = Path(args[-1]).parent / f"_step{abs(hash(code))}.py"
    script.write_text(code)
    full_env = dict(os.environ, **(env or {}))
    proc = subprocess.run([PY, str(script), *map(str, args)], capture_output=True, text=True, env=full_env)
    if proc.returncode != 0:
        raise RuntimeError(f"fixture step failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")


def cache_dir() -> Path:
    key = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]
    return ROOT / ".cache" / "runtime-fixtures" / key


def split_params_1x(model_file: Path, params_file: Path, out_dir: Path) -> None:
    """Write a Paddle 1.x directory (__model__ + one file per parameter) from a legacy model.

    A combined .pdiparams is the persistable variables' tensors serialised back to
    back in sorted name order; each record is self-delimiting, so it can be cut.
    """
    # legacy mode for the paddle imported here, without leaking the flag into later child processes
    saved = os.environ.get("FLAGS_enable_pir_api")
    os.environ.setdefault("FLAGS_enable_pir_api", "0")
    try:
        from paddle.base.proto import framework_pb2
    finally:
        if saved is None:
            os.environ.pop("FLAGS_enable_pir_api", None)

    program = framework_pb2.ProgramDesc()
    program.ParseFromString(model_file.read_bytes())
    names = sorted(v.name for v in program.blocks[0].vars if v.persistable and v.name not in ("feed", "fetch"))
    data = params_file.read_bytes()
    pos = 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        start = pos
        pos += 4                                   # uint32 version
        (lod_level,) = struct.unpack_from("<Q", data, pos)
        pos += 8
        for _ in range(lod_level):
            (size,) = struct.unpack_from("<Q", data, pos)
            pos += 8 + size
        pos += 4                                   # uint32 tensor version
        (desc_size,) = struct.unpack_from("<i", data, pos)
        pos += 4
        desc = framework_pb2.VarType.TensorDesc()
        desc.ParseFromString(data[pos:pos + desc_size])
        pos += desc_size
        itemsize = {5: 4, 6: 8, 3: 8, 2: 4, 4: 2}[desc.data_type]
        pos += int(np.prod(desc.dims)) * itemsize
        (out_dir / name).write_bytes(data[start:pos])
    assert pos == len(data), "parameter file not fully consumed"
    shutil.copyfile(model_file, out_dir / "__model__")


def build_models() -> dict:
    """Paths of the exported and converted models (built once, then cached)."""
    base = cache_dir()
    done = base / "models.json"
    if done.is_file():
        return {k: Path(v) for k, v in json.loads(done.read_text()).items()}
    tmp = base.with_name(base.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "legacy").mkdir(parents=True)
    (tmp / "pir").mkdir()
    _run(_EXPORT, "legacy", tmp / "legacy")
    _run(_EXPORT, "pir", tmp / "pir")
    model, params = tmp / "legacy" / "model.pdmodel", tmp / "legacy" / "model.pdiparams"
    _run(_CONVERT, "onnx", model, params, tmp / "model.onnx")
    _run(_CONVERT, "x86", model, params, tmp / "model.x86.nb")
    _run(_CONVERT, "arm", model, params, tmp / "model.arm.nb")
    split_params_1x(model, params, tmp / "paddle1")
    base.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(base, ignore_errors=True)
    os.rename(tmp, base)
    paths = {"legacy": base / "legacy" / "model.pdmodel", "pir": base / "pir" / "model.json",
             "paddle1": base / "paddle1", "onnx": base / "model.onnx", "x86_nb": base / "model.x86.nb",
             "arm_nb": base / "model.arm.nb"}
    done.write_text(json.dumps({k: str(v) for k, v in paths.items()}))
    return paths


def golden_inputs(seed: int = 0) -> dict:
    return {"x": np.random.default_rng(seed).standard_normal(INPUT_SHAPE).astype("float32")}


def reference_outputs(models: dict, feeds: dict) -> dict:
    """Paddle Inference outputs of the legacy model (in a child: paddle is heavy and can abort)."""
    from wherry import runtimes

    with runtimes.open(models["legacy"], backend="paddle", isolate=True) as sess:
        return sess.run(feeds)


def make_bundle(dest: Path, models: dict, files=("model.onnx", "model.x86.nb", "model.arm.nb"),
                golden=None, target_arch="x86_64") -> Path:
    """A bundle holding the given converted artifacts and golden data."""
    from wherry.runtimes.bundle import GOLDEN_INPUTS, GOLDEN_OUTPUTS, Artifact, Manifest, content_hash
    from wherry.runtimes.parity import default_tolerance
    from wherry.runtimes.specs import TensorSpec

    dest.mkdir(parents=True)
    (dest / "golden").mkdir()
    feeds = golden_inputs()
    outputs = golden if golden is not None else reference_outputs(models, feeds)
    np.savez(dest / GOLDEN_INPUTS, **feeds)
    np.savez(dest / GOLDEN_OUTPUTS, **outputs)
    source = {"model.onnx": models["onnx"], "model.x86.nb": models["x86_nb"], "model.arm.nb": models["arm_nb"]}
    artifacts = []
    for name in files:
        shutil.copyfile(source[name], dest / name)
        fmt = "onnx" if name.endswith(".onnx") else "nb"
        arch = "any" if fmt == "onnx" else name.split(".")[1]
        artifacts.append(Artifact(file=name, format=fmt, precision="fp32", arch=arch,
                                  size=(dest / name).stat().st_size, sha256=content_hash(dest / name),
                                  places=None if fmt == "onnx" else arch,
                                  tolerance={k: default_tolerance("fp32") for k in outputs}))
    out_specs = [TensorSpec(k, str(v.dtype), (None,) + v.shape[1:]) for k, v in outputs.items()]
    Manifest(name="tinycnn", inputs=[TensorSpec("x", "float32", (None, 3, 16, 16))], outputs=out_specs,
             artifacts=artifacts, target={"name": "test", "arch": target_arch, "os": "linux"},
             golden={"inputs": GOLDEN_INPUTS, "outputs": GOLDEN_OUTPUTS, "origin": "random", "seed": 0}).write(dest)
    return dest


# ----------------------------------------------------------------------------- pytest fixtures
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def rt_models():
    return build_models()


@pytest.fixture(scope="session")
def rt_feeds():
    return golden_inputs()


@pytest.fixture(scope="session")
def rt_reference(rt_models, rt_feeds):
    return reference_outputs(rt_models, rt_feeds)


@pytest.fixture(scope="session")
def rt_bundle(rt_models, rt_reference, tmp_path_factory):
    """A good bundle: model.onnx, model.x86.nb, model.arm.nb with Paddle Inference goldens."""
    return make_bundle(tmp_path_factory.mktemp("bundle") / "tinycnn.test", rt_models, golden=rt_reference)


def copy_bundle(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


@pytest.fixture()
def onnx_only(rt_bundle, tmp_path):
    """The tiny CNN bundle with only its ONNX artifact (quick to check, runs anywhere)."""
    bundle = copy_bundle(rt_bundle, tmp_path / "b")
    data = json.loads((bundle / "manifest.json").read_text())
    data["artifacts"] = [a for a in data["artifacts"] if a["file"] == "model.onnx"]
    (bundle / "manifest.json").write_text(json.dumps(data, indent=2))
    return bundle


def rehash(bundle: Path, file: str) -> None:
    """Update an artifact's (or a golden file's) hash in the manifest after changing the file on purpose."""
    from wherry.runtimes.bundle import content_hash

    manifest = json.loads((bundle / "manifest.json").read_text())
    for art in manifest["artifacts"]:
        if art["file"] == file:
            art["sha256"] = content_hash(bundle / file)
            art["size"] = (bundle / file).stat().st_size
    for key in ("inputs", "outputs"):
        if manifest["golden"][key] == file:
            manifest["golden"][f"{key}_sha256"] = content_hash(bundle / file)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
