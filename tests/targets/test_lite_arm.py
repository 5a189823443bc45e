"""Paddle Lite's ARM runtime, built here from Lite's source (targets/lite), run for real on the
emulated aarch64 board: ARM .nb artifacts (fp32, weight-only, int8) checked against the golden outputs.

The runtime is built once into the user cache (about 20 minutes on 2 cores; a lock keeps parallel
runs from building twice; progress is printed) from Paddle Lite's source archive: $WHERRY_LITE_SOURCE,
or ../shared/vendor/paddle-lite-*.tar.gz next to the repository (or next to its main worktree). When
only the C interface changed, the cached library suffices and the runtime is rebuilt from it in seconds
without the archive. Tests that need it skip, saying why, where neither the archive nor a built library
exists.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys

import numpy as np
import pytest
from support.hostile_fixtures import reseal

from support import lite_prebuild
from support.models import export_vision_model
from support.paths import REPO
from wherry.runtimes import parity
from wherry.runtimes.bundle import content_hash
from wherry.targets import lite

EMULATED = "emulated-aarch64"


@pytest.fixture(scope="session")
def arm_runtime():
    lite_prebuild.wait()
    runtime = lite.find("aarch64")
    if runtime:
        return runtime
    why = lite_prebuild.why_not_buildable()
    if why:
        pytest.skip("cannot build Paddle Lite's ARM runtime here: " + "; ".join(why))
    # not built in the background (a failed build, or the fixture's first use outside a collected run):
    # build it here, with its progress shown even while pytest captures output; build() installs the
    # missing tools when it may and raises with the build's own words when the build fails
    say = lambda msg: print(f"build-lite: {msg}", file=sys.__stderr__, flush=True)  # noqa: E731
    if lite.library_built("aarch64"):
        return lite.build("aarch64", say=say)
    return lite.build("aarch64", source=lite_prebuild.vendor_archive(), say=say)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The digits CNN trained here on scikit-learn digits, with real inputs, calibration and eval digits."""
    from wherry.convert.example import train_digits
    from wherry.convert.example.train import digits_data

    folder = tmp_path_factory.mktemp("digits")
    train_digits(str(folder / "digits_cnn"), "legacy", epochs=20, seed=0)
    x_train, _, x_test, y_test = digits_data(0)
    np.savez(folder / "inputs.npz", x=x_test[:16])
    np.savez(folder / "calib.npz", x=x_train[:128])
    np.savez(folder / "eval_x.npz", x=x_test)
    np.save(folder / "eval_labels.npy", y_test)
    return folder


@pytest.fixture(scope="module")
def rpi4_quant_bundle(wherry, digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("rpi4q")
    # (the exit code is not asserted: on 16 digits the int8 ONNX may miss its cosine bound on the host,
    # which is test_quant.py's subject; this file is about the .nb artifacts)
    proc = wherry("convert", digits / "digits_cnn.pdmodel", "--inputs", digits / "inputs.npz", "-t", "rpi4", "-o", out,
                  "--precision", "fp32,int8-weight,int16-weight,int8", "--calib", digits / "calib.npz")
    bundle = out / "digits_cnn.rpi4"
    assert (bundle / "manifest.json").is_file(), proc.stderr
    return bundle


def _check(wherry, bundle, *extra, timeout=1800):
    proc = wherry("check", bundle, "--device", EMULATED, "--json", *extra, timeout=timeout)
    assert proc.stdout.strip(), proc.stderr
    report = json.loads(proc.stdout)
    return proc, report, {a["file"]: a for a in report["artifacts"]}


def test_arm_nb_variants_pass_on_the_emulated_board(wherry, arm_runtime, rpi4_quant_bundle):
    arts = ["model.arm.nb", "model.arm.int8-weight.nb", "model.arm.int16-weight.nb", "model.arm.int8.nb", "model.onnx"]
    proc, report, results = _check(wherry, rpi4_quant_bundle, *[w for a in arts for w in ("--artifact", a)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert report["device"]["machine"] == "aarch64"
    fp32 = results["model.arm.nb"]
    assert fp32["status"] == "passed", fp32["reason"]
    worst = max(o["max_abs"] for o in fp32["outputs"])
    assert 0 <= worst < 1e-4  # the ARM fp32 kernels reproduce Paddle Inference (measured ~5e-6)
    for name, precision in (("model.arm.int8-weight.nb", "int8-weight"), ("model.arm.int16-weight.nb", "int16-weight"),
                            ("model.arm.int8.nb", "int8")):
        art = results[name]
        assert art["status"] == "passed", (name, art["reason"])
        tol = parity.default_tolerance(precision)
        for out in art["outputs"]:
            assert out["cosine"] >= tol.min_cosine
    # the int8 program really is not the fp32 one: its error is larger, but within int8 tolerance
    assert max(o["max_abs"] for o in results["model.arm.int8.nb"]["outputs"]) > worst
    assert results["model.onnx"]["status"] == "passed"


def test_arm_nb_accuracy_on_the_emulated_board(wherry, arm_runtime, rpi4_quant_bundle, digits, tmp_path):
    """Task accuracy of every ARM .nb on the 450 held-out digits, computed by the ARM kernels on the
    emulated board (accuracy only: emulated timings mean nothing). Recorded in out/quant_arm.json."""
    labels = np.load(digits / "eval_labels.npy")
    rows = {}
    for name in ("model.arm.nb", "model.arm.int8-weight.nb", "model.arm.int16-weight.nb", "model.arm.int8.nb"):
        out = tmp_path / f"{name}.npz"
        proc = wherry("run", rpi4_quant_bundle, "--artifact", name, "--inputs", digits / "eval_x.npz", "--out", out,
                      "--device", EMULATED, timeout=1800)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        scores = next(iter(np.load(out).values()))
        rows[name] = round(100.0 * float((scores.argmax(axis=1) == labels).mean()), 2)
    (REPO / "out").mkdir(exist_ok=True)
    (REPO / "out" / "quant_arm.json").write_text(json.dumps(
        {"model": "digits_cnn", "eval_digits": int(len(labels)), "device": EMULATED, "accuracy": rows}, indent=1))
    assert rows["model.arm.nb"] > 95.0  # the trained model, on the ARM fp32 kernels
    for name, accuracy in rows.items():
        assert rows["model.arm.nb"] - accuracy <= 2.0, (name, rows)  # the int8 bound of test_quant.py


def test_emulated_board_reports_its_lite_runtime(wherry, arm_runtime):
    proc = wherry("info", "--device", EMULATED, check=0)
    assert f"paddlelite {lite.LITE_VERSION}" in proc.stdout, proc.stdout
    runtime_line = next(line for line in proc.stdout.splitlines() if line.startswith("paddlelite_runtime"))
    assert "v2.13-rc" in runtime_line and lite.LITE_COMMIT[:12] in runtime_line and "aarch64" in runtime_line


def test_altered_golden_fails_the_arm_nb(wherry, arm_runtime, rpi4_quant_bundle, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(rpi4_quant_bundle, bad)
    golden = {k: v * 1.5 + 0.5 for k, v in np.load(bad / "golden" / "outputs.npz").items()}
    np.savez(bad / "golden" / "outputs.npz", **golden)
    reseal(bad)  # the golden hashes made to match: only the numbers can fail it now
    proc, _, results = _check(wherry, bad, "--artifact", "model.arm.nb")
    assert proc.returncode == 1
    assert results["model.arm.nb"]["status"] == "failed"
    assert results["model.arm.nb"]["outputs"][0]["max_abs"] > 0.1


def test_tampered_nb_fails_its_integrity_check(wherry, arm_runtime, rpi4_quant_bundle, tmp_path):
    bad = tmp_path / "tampered"
    shutil.copytree(rpi4_quant_bundle, bad)
    nb = bad / "model.arm.nb"
    data = bytearray(nb.read_bytes())
    data[len(data) // 2] ^= 0xFF
    nb.write_bytes(bytes(data))
    proc, _, results = _check(wherry, bad, "--artifact", "model.arm.nb")
    assert proc.returncode == 1
    assert results["model.arm.nb"]["status"] == "failed"
    assert "hash" in results["model.arm.nb"]["reason"] or "tampered" in results["model.arm.nb"]["reason"]


def test_corrupt_nb_crash_is_isolated_on_the_board(wherry, arm_runtime, rpi4_quant_bundle, tmp_path):
    """A bundle whose .nb is garbage but whose manifest matches it (a broken conversion, not tampering):
    Lite fails inside the board's isolated child process; the runner survives and reports a typed error.
    (The ARM build has C++ exceptions on, so Lite's failed checks arrive as "cannot load" errors; a real
    crash would arrive as "paddlelite crashed (SIGSEGV)": both are accepted, neither kills the runner.)"""
    bad = tmp_path / "corrupt"
    shutil.copytree(rpi4_quant_bundle, bad)
    nb = bad / "model.arm.nb"
    data = bytearray(nb.read_bytes())
    rng = np.random.default_rng(0)
    data[20:] = rng.integers(0, 256, len(data) - 20, dtype=np.uint8).tobytes()
    nb.write_bytes(bytes(data))
    manifest = json.loads((bad / "manifest.json").read_text())
    for art in manifest["artifacts"]:
        if art["file"] == "model.arm.nb":
            art["sha256"] = content_hash(nb)
    (bad / "manifest.json").write_text(json.dumps(manifest, indent=1))
    proc, _, results = _check(wherry, bad, "--artifact", "model.arm.nb", "--artifact", "model.onnx")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    reason = results["model.arm.nb"]["reason"]
    assert results["model.arm.nb"]["status"] == "failed"
    assert "paddlelite crashed" in reason or "Paddle Lite cannot load" in reason, reason
    assert results["model.onnx"]["status"] == "passed"  # the runner lived on


def test_native_crash_in_lite_on_the_board_is_isolated(wherry, arm_runtime, rpi4_quant_bundle, tmp_path):
    """A .nb that really crashes Paddle Lite (found by mutating the digits CNN's parameter dims on the
    emulated board): the first conv's filter claims 1048576 output channels while the file holds the
    weights of 16. Lite trusts the dims (the flatbuffer is valid, the weight count is not checked)
    and its ARM conv kernel reads far past the weights: SIGSEGV. Each check runs in a child process
    (on the emulated board a second qemu process), so the runner reports it and checks the next artifact."""
    bad = _crashing_copy(rpi4_quant_bundle, tmp_path)
    proc, report, results = _check(wherry, bad, "--artifact", "model.arm.nb", "--artifact", "model.onnx")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    art = results["model.arm.nb"]
    assert art["status"] == "failed"
    assert "paddlelite crashed" in art["reason"] and "SIGSEGV" in art["reason"], art["reason"]
    assert results["model.onnx"]["status"] == "passed"  # the runner lived on
    assert report["device"]["machine"] == "aarch64"


def test_converts_board_check_names_the_crashing_nb_and_passes_the_rest(arm_runtime, rpi4_quant_bundle, tmp_path):
    """wherry convert runs a bundle's ARM .nb files on the board without an isolated child (the board
    process is apart from wherry already); when one crashes it, the check is repeated isolated, so the
    crash is that artifact's verdict and every other .nb still gets its own."""
    from wherry.convert.board_check import BoardCheck, checkable
    from wherry.convert.progress import Timeline
    from wherry.runtimes.bundle import load_bundle

    bad = _crashing_copy(rpi4_quant_bundle, tmp_path)
    artifacts = load_bundle(bad).manifest.artifacts
    nbs = checkable(artifacts)
    board = BoardCheck(nbs, bad, "checking on the board", Timeline()).finish()
    assert len(nbs) >= 3 and set(board) == {a.file for a in nbs}
    assert board["model.arm.nb"]["status"] == "failed" and "SIGSEGV" in board["model.arm.nb"]["reason"]
    assert all(board[a.file]["status"] == "passed" for a in nbs if a.file != "model.arm.nb"), board
    crashed = next(a for a in nbs if a.file == "model.arm.nb")
    assert any("vs golden: FAIL" in n and "crashed" in n for n in crashed.notes), crashed.notes


def _crashing_copy(rpi4_quant_bundle, tmp_path):
    bad = tmp_path / "crashing"
    shutil.copytree(rpi4_quant_bundle, bad)
    nb = bad / "model.arm.nb"
    data = nb.read_bytes()
    # .nb layout: meta version (2 bytes), opt version (16), program size (8), program, parameters
    params = 26 + struct.unpack_from("<Q", data, 18)[0]
    first_conv = struct.pack("<I4q", 4, 16, 1, 3, 3)  # the parameter's int64 dims vector [16, 1, 3, 3]
    assert data.count(first_conv, params) == 1, "the digits CNN's first conv filter is where this test expects"
    at = data.index(first_conv, params)
    nb.write_bytes(data[:at] + struct.pack("<I4q", 4, 1 << 20, 1, 3, 3) + data[at + len(first_conv):])
    manifest = json.loads((bad / "manifest.json").read_text())
    for art in manifest["artifacts"]:
        if art["file"] == "model.arm.nb":
            art["sha256"] = content_hash(nb)  # a broken conversion, not tampering: the hash matches
    (bad / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return bad


def test_lite_version_mismatch_is_explained(wherry, arm_runtime, rpi4_quant_bundle, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(rpi4_quant_bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["tools"]["paddlelite"] = "2.12"
    (other / "manifest.json").write_text(json.dumps(manifest, indent=1))
    proc, _, results = _check(wherry, other, "--artifact", "model.arm.nb")
    notes = " ".join(results["model.arm.nb"]["notes"])
    assert "version mismatch" in notes and "paddle_lite_opt 2.12" in notes and "v2.13-rc" in notes, notes
    assert results["model.arm.nb"]["status"] == "passed"  # it still loads: the note explains, not fails
    assert proc.returncode == 0


@pytest.mark.slow
def test_mobilenet_v3_small_arm_nb_passes_on_the_emulated_board(wherry, arm_runtime, tmp_path):
    model = export_vision_model("mobilenet_v3_small", "legacy", 224)
    wherry("convert", model, "-t", "rpi4", "-o", tmp_path, check=0)
    bundle = next(tmp_path.glob("*.rpi4"))
    proc, _, results = _check(wherry, bundle, "--artifact", "model.arm.nb")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    art = results["model.arm.nb"]
    assert art["status"] == "passed" and art["outputs"][0]["cosine"] > 0.9999


# ------------------------------------------------------------------------------------ sequence (LoD) inputs

@pytest.fixture(scope="module")
def tagger_rpi4(wherry, arm_runtime, tmp_path_factory):
    """The Paddle 1.x GRU + CRF tagger (one LoD level) converted for rpi4 with three real sentences."""
    from support.models import export_sequence_model

    out = tmp_path_factory.mktemp("tagger_rpi4")
    ids = np.random.default_rng(3).integers(0, 60, size=(13, 1)).astype("int64")
    np.savez(out / "sentences.npz", words=ids, **{"words.lengths": np.array([4, 7, 2])})
    proc = wherry("convert", export_sequence_model(), "--inputs", out / "sentences.npz", "-t", "rpi4", "-o", out,
                  "--name", "tagger", "--json", check=0)
    (summary,) = json.loads(proc.stdout)["bundles"]
    return out / "tagger.rpi4", summary["report"]


def test_sequence_tagger_arm_nb_passes_on_the_emulated_board(wherry, tagger_rpi4):
    """The sequence lengths reach Lite's ARM runtime through the C interface: the CRF path on the ARM
    kernels is exactly Paddle Inference's, during convert and in a later check."""
    bundle, report = tagger_rpi4
    during_convert = report["emulated_verification"]["model.arm.nb"]
    assert during_convert["status"] == "passed", during_convert.get("reason")
    proc, _, results = _check(wherry, bundle, "--artifact", "model.arm.nb")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    art = results["model.arm.nb"]
    assert art["status"] == "passed", art["reason"]
    golden = np.load(bundle / "golden" / "outputs.npz")
    path_name = next(k for k, v in golden.items() if v.dtype == np.int64)
    by_name = {o["name"]: o for o in art["outputs"]}
    assert by_name[path_name]["max_abs"] == 0  # the decoded tag path: integers, exactly equal
    assert max(o["max_abs"] for o in art["outputs"]) < 1e-4


_LOD_SCRIPT = """
import json, sys
import numpy as np
from wherry.runtimes.backends.paddlelite_light import PaddleLiteLightBackend
lite = PaddleLiteLightBackend(sys.argv[1])
ids = np.random.default_rng(4).integers(0, 60, size=(10, 1)).astype("int64")
result = {}
for split in ([10], [3, 3, 4]):
    outs = lite.run({"words": ids, "words.lengths": np.array(split)})
    result[str(len(split))] = {name: {"value": value.tolist(), "lod": lite.output_lod(name)} for name, value in outs.items()}
print(json.dumps(result))
"""


def test_arm_c_interface_sets_and_reads_sequence_lengths(arm_runtime, tagger_rpi4):
    """On the emulated board, through the ctypes backend: other lengths for the same rows give another
    CRF path (the lengths really reach the ARM kernels), the same one Paddle Inference computes, and
    each output's LoD read back from Lite is the input's sequence offsets."""
    from support.models import export_sequence_model
    from wherry import runtimes
    from wherry.targets.devices import EmulatedAarch64

    bundle, _ = tagger_rpi4
    proc = subprocess.run([*EmulatedAarch64().python(), "-c", _LOD_SCRIPT, str(bundle / "model.arm.nb")],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    on_board = json.loads(proc.stdout)
    ids = np.random.default_rng(4).integers(0, 60, size=(10, 1)).astype("int64")
    paths = []
    for split in ([10], [3, 3, 4]):
        board_run = on_board[str(len(split))]
        with runtimes.open(str(export_sequence_model()), backend="paddle", isolate=True) as ref:
            expected = ref.run({"words": ids, "words.lengths": np.array(split)})
        assert set(board_run) == set(expected)
        for name, want in expected.items():
            np.testing.assert_allclose(np.array(board_run[name]["value"]), want, atol=1e-4, err_msg=name)  # ARM GRU: ~1.4e-5
            assert board_run[name]["lod"] == [[0] + np.cumsum(split).tolist()], (name, board_run[name]["lod"])
        path_name = next(name for name, value in expected.items() if value.dtype == np.int64)
        paths.append(np.array(board_run[path_name]["value"]))
    assert not np.array_equal(*paths), "the split must change the CRF path"


# ------------------------------------------------------------------------------------------- no runtime

def test_build_lite_names_each_missing_prerequisite(tmp_path):
    """Without a cross compiler, cmake and make on PATH: one message naming each, exit 2, no traceback."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "git", "python3"):
        if shutil.which(tool):
            (bin_dir / tool).symlink_to(shutil.which(tool))
    env = dict(os.environ, PATH=str(bin_dir), WHERRY_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "targets", "build-lite", "--arch", "aarch64",
                           "--source", str(tmp_path)], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    assert "aarch64-linux-gnu-g++ not found: apt-get install g++-aarch64-linux-gnu" in proc.stderr
    assert "cmake not found" in proc.stderr and "make not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_build_lite_without_source_says_where_to_get_it(tmp_path):
    env = dict(os.environ, WHERRY_CACHE=str(tmp_path / "cache"), WHERRY_LITE_REPOSITORY=str(tmp_path / "no-repo"))
    missing = lite.missing_prerequisites("aarch64", need_lib=True)
    if missing and not lite.installable_prerequisites("aarch64", need_lib=True):
        pytest.skip("the build prerequisites are missing here and this user may not install them: "
                    + "; ".join(missing))
    proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "targets", "build-lite", "--arch", "aarch64"],
                          capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 2 and "no Paddle Lite source" in proc.stderr and "--source" in proc.stderr, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "targets", "build-lite", "--source",
                           str(tmp_path / "missing.tar.gz")], capture_output=True, text=True, env=env, cwd=REPO)
    assert proc.returncode == 2 and "does not exist" in proc.stderr and "Traceback" not in proc.stderr


def test_lite_versions_compare_in_one_spelling():
    from wherry.runtimes import lite_version

    assert lite_version.normalize("v2.13-rc") == lite_version.normalize("2.13rc0") == "2.13rc0"
    assert lite_version.normalize("v2.12.0") == lite_version.normalize("2.12") == "2.12"
    assert lite_version.mismatch("2.13rc0", "v2.13-rc") is None
    assert lite_version.mismatch(None, "v2.13-rc") is None  # a manifest without the opt version: nothing to say
    note = lite_version.mismatch("2.12", "v2.13-rc", "102697b54f58bbc7", "model.arm.nb")
    assert "model.arm.nb was written by paddle_lite_opt 2.12" in note and "v2.13-rc (commit 102697b54f58)" in note


def test_a_changed_c_interface_keeps_the_built_lite_library(tmp_path, monkeypatch):
    """The C interface has its own cache key: editing wherry_lite.cc rebuilds only it (seconds), never
    Lite's library (~20 minutes), whose key is the cmake recipe alone."""
    lib_before, shim_before = lite.lib_dir("aarch64"), lite.runtime_dir("aarch64")
    changed = tmp_path / "wherry_lite.cc"
    changed.write_bytes(lite.SHIM_SOURCE.read_bytes() + b"\n// a new function\n")
    monkeypatch.setattr(lite, "SHIM_SOURCE", changed)
    assert lite.lib_dir("aarch64") == lib_before
    assert lite.runtime_dir("aarch64") != shim_before


def test_the_runtime_is_rebuilt_from_the_cached_library_without_the_source(wherry, arm_runtime, rpi4_quant_bundle,
                                                                             tmp_path, monkeypatch):
    """A clean clone (CI) finds Lite's library cached but no runtime for its C interface, and no Lite source:
    `wherry targets build-lite` (no --source) builds only the C interface against the cached library, and the
    emulated board runs an ARM .nb on the result. A changed C interface (a new shim key) is rebuilt the same way.
    A cache of its own: the library copied, the board's sysroot linked, so nothing of the real cache changes."""
    from wherry.targets.devices import emulated_board_dir

    real_lib, real_board = lite.lib_dir("aarch64"), emulated_board_dir()
    cache = tmp_path / "cache"
    lib = cache / real_lib.relative_to(lite.cache_root())
    shutil.copytree(real_lib, lib)
    board = cache / "emulated-aarch64"
    board.mkdir()
    for name in ("sysroot", "site-packages", ".ready-v2"):
        (board / name).symlink_to(real_board / name)
    monkeypatch.setenv("WHERRY_CACHE", str(cache))
    monkeypatch.setenv("WHERRY_LITE_REPOSITORY", str(tmp_path / "no-repository"))  # a clone would fail loudly
    assert lite.lib_dir("aarch64") == lib and lite.library_built("aarch64") and lite.find("aarch64") is None
    library_bytes = (lib / "libpaddle_light_api_shared.so").read_bytes()

    proc = wherry("targets", "build-lite", "--arch", "aarch64", timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "building only the C interface" in proc.stderr and "built in" in proc.stdout, proc.stdout + proc.stderr
    runtime = lite.find("aarch64")
    assert runtime is not None and runtime.folder.is_relative_to(cache)
    assert (runtime.folder / "libwherry_lite.so").is_file()
    assert (lib / "libpaddle_light_api_shared.so").read_bytes() == library_bytes  # the library was not rebuilt
    assert sorted(p.name for p in lib.parent.iterdir()) == sorted([lib.name, runtime.folder.parent.name])

    proc, report, results = _check(wherry, rpi4_quant_bundle, "--artifact", "model.arm.nb", timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert results["model.arm.nb"]["status"] == "passed", results["model.arm.nb"]["reason"]
    assert (board / "paddle-lite-builds" / runtime.folder.parent.name).is_dir()  # the board ran the rebuilt one

    changed = tmp_path / "wherry_lite.cc"
    changed.write_bytes(lite.SHIM_SOURCE.read_bytes() + b"\n// a new function\n")
    monkeypatch.setattr(lite, "SHIM_SOURCE", changed)
    assert lite.find("aarch64") is None
    rebuilt = lite.build("aarch64", say=lambda msg: None)
    assert rebuilt.built_now and rebuilt.folder.parent == lite.runtime_dir("aarch64") != runtime.folder.parent
    assert (lib / "libpaddle_light_api_shared.so").read_bytes() == library_bytes


def test_lite_arm_pool2d_takes_an_identity_adaptive_pool_for_a_global_one(arm_runtime, tmp_path):
    """Paddle Lite's ARM pool2d computes an adaptive pool whose output size equals its input size (the identity;
    zoo/ppliteseg's pyramid pooling on a 4x4 feature map) as a global pool: one mean per channel at the start of
    the output, the rest left as it was. `wherry debug --device` names the op with the ARM kernels on the board;
    the identity-adaptive-pool pass makes it a 1x1 pool, and the bundle's ARM .nb then matches Paddle."""
    from support.models import export_legal_model
    from support.matrix_records import board_result
    from wherry.convert import legalize, pipeline, source
    from wherry.convert.debug import locate, taps

    model = export_legal_model("identity_adaptive_pool")
    params = model.with_suffix(".pdiparams")
    without = legalize.legalize(model, params, tmp_path / "without",
                                [p for p in legalize.PASSES if p != "identity-adaptive-pool"])
    ops = source.load_program_desc(without[0]).blocks[0].ops
    pool = next(op for op in ops if op.type == "pool2d" and list(next(a for a in op.attrs if a.name == "ksize").ints)
                == [4, 4])
    pool_in, pool_out = pool.inputs[0].arguments[0], pool.outputs[0].arguments[0]
    feeds = {"x": np.random.default_rng(0).uniform(-1, 1, (1, 3, 6, 6)).astype(np.float32)}
    tensors, _, _ = taps.lite_tensors(without[0], without[1], feeds, tmp_path / "raw", "arm", EMULATED)
    x, wrong = tensors[pool_in][0], tensors[pool_out][0]
    assert np.abs(wrong - x).max() > 0.1  # not the identity it should be ...
    np.testing.assert_allclose(wrong.reshape(-1)[:len(x)], x.mean(axis=(1, 2)), atol=1e-5)  # ... but channel means

    out = tmp_path / "out"
    bundle = pipeline.convert(pipeline.ConvertOptions(model=str(model), targets=["rpi4"], out=out))[0]
    assert any(c.startswith("identity-adaptive-pool:") for c in bundle.report["legalized"]), bundle.report["legalized"]
    on_board = board_result(bundle, "model.arm.nb")
    assert on_board is not None and on_board["status"] == "passed", on_board

    report = locate.debug(bundle.path, str(model), ["model.arm.nb"], device=EMULATED, nb_program=without[:2])
    first = report.artifacts[0].to_json()["first_divergence"]
    assert first["type"] == "pool2d" and first["outputs"][0]["name"] == pool_out, first
    assert all(i["parity"]["verdict"] == "passed" for i in first["inputs"])
    assert "arm kernels on emulated-aarch64" in report.artifacts[0].reason
    healthy = locate.debug(bundle.path, str(model), ["model.arm.nb"], device=EMULATED)
    assert healthy.artifacts[0].status == locate.HEALTHY, healthy.artifacts[0].reason


def test_a_dynamic_width_recognizer_arm_nb_passes_at_two_widths_in_one_predictor(wherry, arm_runtime, tmp_path):
    """The proof at several shapes on the ARM kernels: a PIR recognizer with a dynamic width, converted for the
    Pi, runs on the emulated board at the width given and at half of it, one after the other in one predictor
    (Lite's ARM runtime takes the change of shape that its x86 one mishandles), and the bundle's verdict
    counts it."""
    model = export_vision_model("rec_dynamic", "pir", 32)
    proc = wherry("convert", model, "-t", "rpi4", "--shape", "x=1,3,32,160", "-o", tmp_path, "--json", "--strict")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (bundle,) = json.loads(proc.stdout)["bundles"]
    assert bundle["verdict"] == "passed"
    nb = {a["file"]: a for a in bundle["report"]["verification"]["artifacts"]}["model.arm.nb"]
    assert nb["status"] == "passed" and "emulated aarch64 board" in nb["reason"]
    assert [s["shapes"]["x"] for s in nb["shapes"]] == [[1, 3, 32, 160], [1, 3, 32, 64]]
    assert all(s["status"] == "passed" and not s.get("shape_change") and s["cosine"] > 0.9999 for s in nb["shapes"])


def test_lite_arm_adaptive_pool_at_a_run_time_size_needs_the_dynamic_adaptive_pool_pass(arm_runtime, tmp_path):
    """The same pools with dynamic H, W (as PP-LiteSeg's pyramid pooling is exported with [None, 3, None,
    None]): the ARM .nb is right at 10 x 10 and wrong at 6 x 6, where the 4 x 4 pool meets a 4 x 4 map, unless
    the dynamic-adaptive-pool pass gave the pools unequal strides; the bundle's proof at two shapes shows it."""
    from support.models import export_legal_model
    from support.matrix_records import board_result
    from wherry.convert import pipeline

    model = export_legal_model("dynamic_adaptive_pool")
    verdicts = {}
    for skip in ((), ("dynamic-adaptive-pool",)):
        options = pipeline.ConvertOptions(model=str(model), targets=["rpi4"], out=tmp_path / f"out{len(skip)}",
                                          shapes=[{"x": (1, 3, 10, 10)}, {"x": (1, 3, 6, 6)}],
                                          skip_passes=list(skip), formats=["nb"])
        board = board_result(pipeline.convert(options)[0], "model.arm.nb")
        assert board is not None, "the emulated board did not run the ARM .nb"
        verdicts[skip] = [(s["shapes"]["x"][2], s["status"]) for s in board["shapes"]]
    assert verdicts[()] == [(10, "passed"), (6, "passed")], verdicts
    assert verdicts[("dynamic-adaptive-pool",)] == [(10, "passed"), (6, "failed")], verdicts


def test_max_drop_keeps_the_same_layers_in_float_in_the_arm_int8_nb(wherry, arm_runtime, tmp_path):
    """--max-drop for the .nb: the layers the int8 ONNX keeps in float stay float in the ARM int8 .nb as well
    (Paddle PTQ's skip list, Lite's own mechanism), and the emulated board judges the rebuilt file. On the bundled
    digits example, 0.01 keeps Conv.0 and Conv.1 (conv2d_0.w_0, conv2d_1.w_0) in float (tests/convert/test_quant.py)."""
    from wherry.convert import example

    proc = wherry("convert", example.MODEL, "--inputs", example.INPUTS, "-t", "rpi4", "-o", tmp_path,
                  "--precision", "fp32,int8", "--calib", example.CALIB, "--max-drop", "0.01", "--json", check=None)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)["bundles"][0]
    nb = next(a for a in result["report"]["artifacts"] if a["file"] == "model.arm.int8.nb")
    kept = [n for n in nb["notes"] if n.startswith("kept in float to meet --max-drop")]
    assert kept and "conv2d_0.w_0" in kept[0] and "conv2d_1.w_0" in kept[0], nb["notes"]
    rows = {r["artifact"]: r for r in result["report"]["quantization"]["rows"]}
    assert rows["model.arm.int8.nb"]["weight_layers"] == 4
    assert rows["model.arm.int8.nb"]["quantized_layers"] == rows["model.int8.onnx"]["quantized_layers"] == 2
    outcome = next(a for a in result["artifacts"] if a["file"] == "model.arm.int8.nb")
    assert outcome["board_verdict"] == "passed", outcome


def test_an_arm_nb_failing_on_the_board_is_located_there(wherry, arm_runtime, tmp_path):
    """Lite 2.13's ARM pad3d ignores the constant pad value too: the ARM .nb fails on the emulated board, and
    the conversion runs the first-divergence search with the ARM kernels on that board (--locate) and names
    pad3d; the debug command it prints runs there as well."""
    from support.models import export_op_case

    pads = export_op_case("pads")
    proc = wherry("convert", pads / "model.pdmodel", "--inputs", pads / "inputs.npz", "-t", "rpi4", "--precision",
                  "fp32", "-o", tmp_path, "--name", "pads", "--json", check=1)
    (bundle,) = json.loads(proc.stdout)["bundles"]
    nb = next(a for a in bundle["artifacts"] if a["file"] == "model.arm.nb")
    assert nb["verdict"] == "failed" and nb["board_verdict"] == "failed"
    assert nb["located"]["op"] == "pad3d" and nb["located"]["device"] == EMULATED, nb["located"]
    assert nb["located"]["inputs_within_tolerance"]
    assert nb["debug_command"].endswith("--artifact model.arm.nb --device emulated-aarch64")


def test_debug_ranks_an_int8_nbs_layers_by_their_damage_on_the_arm_kernels(wherry, arm_runtime, tmp_path):
    """Per-layer quantization damage of an int8 .nb on Paddle Lite's ARM kernels: the conversion keeps the
    quantized program opt built the .nb from, and `debug --device emulated-aarch64` rebuilds it with every layer's
    output fetched, runs it on the board and ranks the layers by SNR against the float model's same layer."""
    from wherry.convert import example
    from wherry.runtimes.bundle import load_bundle

    wherry("convert", example.MODEL, "--inputs", example.INPUTS, "-t", "rpi4", "-o", tmp_path, "--name", "digits",
           "--precision", "fp32,int8", "--calib", example.CALIB)
    bundle = tmp_path / "digits.rpi4"
    assert load_bundle(bundle).program_files("model.arm.int8.nb") is not None   # kept, hashed, verified
    proc = wherry("debug", bundle, "--artifact", "model.arm.int8.nb", "--device", EMULATED, "--json")
    (art,) = json.loads(proc.stdout)["artifacts"]
    assert art["status"] == "no divergence", art["reason"]
    assert "conv2d/int8 x3" in art["reason"]     # the debug build really ran int8 kernels
    damage = art["damage"]
    assert len(damage) == len(art["ops"]) >= 15
    snrs = [row["snr_db"] for row in damage]
    finite = [x for x in snrs if isinstance(x, float)]
    assert snrs[:len(finite)] == sorted(finite) and all(x == "inf" for x in snrs[len(finite):]), snrs  # worst first
    assert finite[0] < 60, damage[0]   # int8 really costs something (an fp32 rebuild would be ~100+ dB)
    assert any(row["type"] == "conv2d" for row in damage[:8])
    # on this host an int8 .nb cannot run: said, with the way to do it
    here = wherry("debug", bundle, "--artifact", "model.arm.int8.nb", "--json")
    (art,) = json.loads(here.stdout)["artifacts"]
    assert art["status"] == "not supported" and "--device emulated-aarch64" in art["reason"]
