"""Every command line in the bash blocks of the README and of the docs pages its guide moved to (PAGES) is
accounted for here, so docs cannot drift.

RUN_HERE lines run in a scratch directory whose files carry the docs' names (model.pdmodel,
mnv3.rpi4, ...), made from the example model; the docs' [optional] parts are included and their
placeholder output name `logits` becomes the model's real one. RUN_BY lines are run, as written
or with the docs' placeholders filled in, by the named test (which must exist). NOT_RUN lines
need what this machine lacks and are not verifiable here. A documented command missing from all three
fails the test, as does an entry whose command left the pages."""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path


from wherry.convert import example

ROOT = Path(__file__).resolve().parents[2]
#: the pages whose bash blocks are executed: the README and the user guide pages that came out of it
PAGES = ("README.md", "docs/guide.md", "docs/running.md", "docs/benchmarks.md")

RUN_HERE = [
    "wherry inspect mnv3/model.pdmodel",
    "wherry convert mnv3/model.pdmodel -t rpi4 -o out",
    "wherry convert det/inference.pdmodel --inputs sample.npz",
    "wherry convert lac_1x/ --lod words=4,7,2",
    "wherry check out/mnv3.rpi4 --json",
    "wherry debug out/mnv3.rpi4 --model mnv3/model.pdmodel",
    "wherry check out/mnv3.rpi4 --html report.html",
    "wherry targets",
    "python -m wherry.runtimes info",
    "python -m wherry.runtimes check mnv3.rpi4 [--json] [--junit out.xml] [--atol 1e-3] [--rtol logits:1e-3] "
    "[--min-cosine 0.999]",
    "python -m wherry.runtimes run mnv3.rpi4 --artifact model.onnx [--inputs in.npz] --out out.npz",
    "python -m wherry.runtimes bench mnv3.rpi4 --artifact model.onnx --runs 50 [--threads 4]",
    "pytest --wherry-bundle mnv3.rpi4",
]
RUN_BY = {
    "bash scripts/example.sh": "tests/convert/test_cli_convert.py::test_example_prints_the_verification_table",
    "bash scripts/test.sh": "tests/e2e/test_packaging.py::test_package_lists_name_every_package_folder",  # this suite
    "bash scripts/test.sh -m quick": "tests/e2e/test_packaging.py::test_the_quick_tier_covers_each_area_and_leaves_the_slow_parts_out",
    "pip install ./runtimes '.[host]'": "tests/e2e/test_packaging.py::test_host_install_runs_wherry",
    "pip install ./runtimes": "tests/e2e/test_packaging.py::test_board_install_runs_the_runner",
    "pip install numpy onnxruntime": "tests/e2e/test_packaging.py::test_board_install_runs_the_runner",
    "pip install paddlelite": "tests/e2e/test_packaging.py::test_host_install_runs_wherry",
    "wherry convert rec/model.json --shape x=1,3,48,320 --shape x=1,3,48,160 --shape x=1,3,48,640":
        "tests/convert/test_shapes.py::test_named_shape_sets_are_each_checked_and_their_golden_files_are_hashed",
    "wherry convert model.json -t desktop-x86_64 -t rpi4 --shape x=1,3,224,224":
        "tests/convert/test_cli_convert.py::test_dynamic_dims_need_a_shape",
    "wherry convert cls/ --images photos/ --preprocess '{\"size\": [48, 192], \"mean\": [0.5,0.5,0.5], "
    "\"std\": [0.5,0.5,0.5]}'": "tests/convert/test_cli_convert.py::test_golden_from_real_images_records_the_preprocessing",
    "wherry convert mnv3/model.pdmodel -t rpi4 --precision fp32,fp16,int8-weight,int8 --calib calib.npz "
    "--eval labelled.npz": "tests/e2e/test_readme_commands.py::test_readme_int8_recipe_passes_as_written",
    "wherry convert lac_1x/ --inputs sentences.npz":
        "tests/convert/test_sequence_inputs.py::test_tagger_converts_with_real_lengths_lite_matches_and_onnx_is_not_representable",
    "wherry convert lac_1x/ -t rpi4 --inputs sentences.npz --precision fp32,int8 --calib calib.npz":
        "tests/convert/test_sequence_quant.py::test_int8_nb_is_built_from_lod_calibration",
    "wherry convert detector.pdmodel --without-nms": "tests/convert/test_detection.py::detector_bundles",
    "wherry inspect mnv3/model.json": "tests/convert/test_pir_translate.py::test_inspect_lists_each_pir_op_and_its_artifacts",
    "wherry targets build-lite --arch aarch64":
        "tests/targets/test_lite_arm.py::test_the_runtime_is_rebuilt_from_the_cached_library_without_the_source",
    "pip install wherry_lite_runtime-*.whl": "tests/targets/test_lite_arm.py::test_emulated_board_reports_its_lite_runtime",
    "wherry check out/mnv3.rpi4 --device emulated-aarch64": "tests/targets/test_devices.py::test_check_on_emulated_aarch64_board",
    "wherry check out/mnv3.rpi4 --device 'ssh://pi@raspberrypi.local?python=/home/pi/wherry/bin/python'":
        "tests/targets/test_devices.py::test_check_over_ssh",
    "wherry check out/mnv3.rpi4 --device http://board:8765": "tests/runtimes/test_serve.py::test_full_check_round_trip_through_the_cli",
    "wherry zoo zoo.toml -o out/zoo -j 2 --markdown matrix.md": "tests/convert/test_zoo_command.py::first_run",
    "wherry zoo zoo.toml --ray local": "tests/convert/test_zoo_command.py::test_ray_gives_the_same_verdicts_as_a_local_run",
    "wherry convert mnv3/model.pdmodel -t web -o out": "tests/targets/test_web.py::test_web_profile_builds_onnx_only",
    "wherry inspect out/mnv3.web -t web": "tests/targets/test_web.py::test_inspect_web_preflight",
    "wherry check out/mnv3.web --device browser --junit web.xml":
        "tests/targets/test_web.py::test_fp32_fp16_int8_pass_in_the_browser_on_wasm",
    "wherry check out/mnv3.web --device browser:webgpu":
        "tests/targets/test_web.py::test_webgpu_is_correct_or_not_verifiable_and_labelled_emulated",
    "wherry bench out/mnv3.web --device browser --runs 50": "tests/targets/test_web.py::test_bench_in_the_browser_against_native",
}
NOT_RUN = {
    "scp -r out/mnv3.rpi4 pi@board:": "no board here (the ssh device test copies bundles to a loopback sshd)",
    ".venv/bin/python benchmarks/bench_convert.py": "minutes of CPU; the benchmark figures are regenerated by hand",
    ".venv/bin/python benchmarks/bench_runtime.py": "minutes of CPU; the benchmark figures are regenerated by hand",
    ".venv/bin/python benchmarks/bench_debug.py": "minutes of CPU; the benchmark figures are regenerated by hand",
    ".venv/bin/python benchmarks/bench_zoo.py": "minutes of CPU; the benchmark figures are regenerated by hand",
}


def documented_commands(page: str):
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", (ROOT / page).read_text(), re.S):
        for line in block.splitlines():
            line = re.split(r"\s{2,}#", line.strip())[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def test_every_documented_command_is_accounted_for():
    documented = {line: page for page in PAGES for line in documented_commands(page)}
    listed = set(RUN_HERE) | set(RUN_BY) | set(NOT_RUN)
    assert {line: page for line, page in documented.items() if line not in listed} == {}, \
        "documented commands no test runs: add them to this file"
    assert listed - set(documented) == set(), "commands listed here are gone from the docs: remove them"


def test_the_tests_named_for_readme_commands_exist():
    for test in set(RUN_BY.values()):
        path, name = test.split("::")
        assert re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M), test


def _argv(line: str, output_name: str):
    line = re.sub(r"\[([^\]]*)\]", r"\1", line).replace("logits:", f"{output_name}:")
    argv = shlex.split(line)
    if argv[0] == "wherry":
        return [sys.executable, "-m", "wherry.convert.cli", *argv[1:]]
    if argv[:2] == ["python", "-m"]:
        return [sys.executable, *argv[1:]]
    if argv[0] == "pytest":
        return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *argv[1:]]
    raise AssertionError(f"no way to run {line!r}")


def test_readme_commands_run(tmp_path):
    for folder, stem in (("mnv3", "model"), ("det", "inference")):
        (tmp_path / folder).mkdir()
        for suffix in (".pdmodel", ".pdiparams"):
            shutil.copy(example.MODEL.with_suffix(suffix), tmp_path / folder / f"{stem}{suffix}")
    shutil.copy(example.INPUTS, tmp_path / "sample.npz")
    from support.models import export_sequence_model
    shutil.copytree(export_sequence_model(), tmp_path / "lac_1x")
    output_name = None
    for line in RUN_HERE:
        if "mnv3.rpi4" in line.split() and not (tmp_path / "mnv3.rpi4").exists():  # the runtime section's bundle
            shutil.copytree(tmp_path / "out" / "mnv3.rpi4", tmp_path / "mnv3.rpi4")
            shutil.copy(tmp_path / "mnv3.rpi4" / "golden" / "inputs.npz", tmp_path / "in.npz")
            manifest = json.loads((tmp_path / "mnv3.rpi4" / "manifest.json").read_text())
            output_name = manifest["outputs"][0]["name"]
        proc = subprocess.run(_argv(line, output_name), capture_output=True, text=True, cwd=tmp_path, timeout=900)
        assert proc.returncode == 0, f"{line}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
    assert (tmp_path / "out" / "det.desktop-x86_64" / "manifest.json").is_file()
    assert (tmp_path / "out" / "lac_1x.desktop-x86_64" / "manifest.json").is_file()
    assert (tmp_path / "out.xml").is_file() and (tmp_path / "out.npz").is_file()
    assert "<table>" in (tmp_path / "report.html").read_text()


def test_readme_int8_recipe_passes_as_written(tmp_path):
    """The user guide's int8 command and its Python example, run literally (no --inputs) on the digits example
    with its real calibration digits: golden inputs come from calib.npz, and every artifact passes. With
    seeded random golden inputs instead, the int8 ONNX failed (max abs 30.7, cosine 0.874) and exit was 1."""
    line = next(c for c in RUN_BY if "int8" in c and c.startswith("wherry convert"))
    (tmp_path / "mnv3").mkdir()
    for suffix in (".pdmodel", ".pdiparams"):
        shutil.copy(example.MODEL.with_suffix(suffix), tmp_path / "mnv3" / f"model{suffix}")
        shutil.copy(example.MODEL.with_suffix(suffix), tmp_path / f"model{suffix}")
    shutil.copy(example.CALIB, tmp_path / "calib.npz")
    shutil.copy(example.EVAL, tmp_path / "labelled.npz")
    proc = subprocess.run(_argv(line, None), capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, f"{line}\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}"
    assert "golden inputs: 8 sample(s) held out of calib.npz (calibration uses the other 120)" in proc.stdout
    manifest = json.loads((tmp_path / "out" / "mnv3.rpi4" / "manifest.json").read_text())
    assert manifest["golden"]["origin"] == "calib"
    assert {a["precision"] for a in manifest["artifacts"]} >= {"fp32", "int8-weight", "int8"}

    guide = (ROOT / "docs" / "guide.md").read_text()
    code = re.search(r"### From Python.*?```python\n(.*?)```", guide, re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert " True [" in proc.stdout and "failed" not in proc.stdout, proc.stdout
    assert "'model.int8.onnx', 'int8', 'passed'" in proc.stdout, proc.stdout
