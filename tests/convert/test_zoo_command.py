"""`wherry zoo`: a zoo file of real small models converted as a matrix, a failing cell among passing
ones, the content-addressed cache, memory reporting, crash isolation and Ray (marker `ray`).

Not the model-family zoo of tests/support/zoo/ (pytest -m zoo): this tests the user command."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import numpy as np
import pytest
from support.models import export_legal_model
from support.paths import REPO
from support.processes import sigint_as_in_a_terminal

from wherry.convert import example

SCHEMA = json.loads((REPO / "docs" / "schemas" / "zoo.schema.json").read_text())


def zoo_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "wherry.convert.cli", "zoo", *map(str, args)], capture_output=True,
                          text=True, timeout=1800, cwd=cwd or REPO)


def run_json(*args, code=None):
    proc = zoo_cli(*args, "--json")
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, SCHEMA)
    if code is not None:
        assert proc.returncode == code, proc.stderr
    return doc, proc


def verdicts(doc) -> dict:
    return {(c["model"], c["target"]): (c["status"], sorted((a["file"], a["verdict"]) for a in c["artifacts"]))
            for c in doc["cells"]}


@pytest.fixture(scope="module")
def zoo_file(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("zoo")
    np.savez(folder / "wrong_inputs.npz", not_an_input=np.zeros((1, 1, 28, 28), np.float32))
    (folder / "zoo.toml").write_text(f"""
targets = ["desktop-x86_64", "rpi4"]
[models.digits]
path = "{example.MODEL}"
inputs = "{example.INPUTS}"
[models.swish]
path = "{export_legal_model('swish')}"
targets = ["desktop-x86_64"]
[models.wrong_inputs]
path = "{example.MODEL}"
inputs = "wrong_inputs.npz"
targets = ["desktop-x86_64"]
""")
    return folder / "zoo.toml"


@pytest.fixture(scope="module")
def first_run(zoo_file, tmp_path_factory):
    cache, out = tmp_path_factory.mktemp("cache"), tmp_path_factory.mktemp("out")
    start = time.perf_counter()
    doc, proc = run_json(zoo_file, "-o", out, "--cache-dir", cache, "-j", "2", "--markdown", out / "matrix.md",
                         code=1)
    return doc, time.perf_counter() - start, cache, out


def test_matrix_converts_every_cell_and_one_error_does_not_stop_the_others(first_run):
    doc, _, _, out = first_run
    cells = {(c["model"], c["target"]): c for c in doc["cells"]}
    assert list(cells) == [("digits", "desktop-x86_64"), ("digits", "rpi4"), ("swish", "desktop-x86_64"),
                           ("wrong_inputs", "desktop-x86_64")]
    assert doc["ok"] is False and doc["summary"]["error"] == 1
    # the rpi4 cell is passed only where the emulated board ran its .nb, else partly verified: never passed
    # with an artifact that did not run
    rpi4 = cells[("digits", "rpi4")]
    ran = {a["file"]: a.get("board_verdict") for a in rpi4["artifacts"]}["model.arm.nb"] == "passed"
    assert rpi4["status"] == ("passed" if ran else "partly verified")
    assert doc["summary"]["passed"] == (3 if ran else 2) and doc["summary"]["partly verified"] == (0 if ran else 1)
    bad = cells[("wrong_inputs", "desktop-x86_64")]
    assert bad["status"] == "error" and "missing 'x'" in bad["error"]["message"] and bad["error"]["hint"]
    x86 = {a["file"]: a["verdict"] for a in cells[("digits", "desktop-x86_64")]["artifacts"]}
    assert x86 == {"model.x86.nb": "passed", "model.onnx": "passed"}
    arm = {a["file"]: a["verdict"] for a in cells[("digits", "rpi4")]["artifacts"]}
    assert arm["model.onnx"] == "passed" and arm["model.arm.nb"] in ("passed", "not verifiable here")
    for key in [("digits", "desktop-x86_64"), ("digits", "rpi4"), ("swish", "desktop-x86_64")]:
        cell = cells[key]
        assert Path(cell["bundle"]) == out / f"{key[0]}.{key[1]}" and (Path(cell["bundle"]) / "manifest.json").is_file()
        assert not cell["cached"] and 100 < cell["peak_rss_mb"] < 8000   # a real Paddle process tree
    assert not (out / "wrong_inputs.desktop-x86_64").exists()
    markdown = (out / "matrix.md").read_text()
    assert "| digits | rpi4 |" in markdown and "✅ pass" in markdown and "❌ error" in markdown


def test_rerun_of_unchanged_cells_is_cached_and_fast(first_run, zoo_file):
    doc, first_seconds, cache, out = first_run
    start = time.perf_counter()
    again, proc = run_json(zoo_file, "-o", out, "--cache-dir", cache, code=1)
    seconds = time.perf_counter() - start
    assert verdicts(again) == verdicts(doc)
    assert [c["cached"] for c in again["cells"]] == [True, True, True, False]   # errors are not cached
    assert again["summary"]["cached"] == 3
    assert seconds < 0.5 * first_seconds, (seconds, first_seconds)
    table = zoo_cli(zoo_file, "-o", out, "--cache-dir", cache).stdout
    assert "cached" in table and "3 cached" in table


def test_changed_option_recomputes_only_that_model(first_run, zoo_file, tmp_path):
    _, _, cache, _ = first_run
    changed = tmp_path / "zoo.toml"
    text = zoo_file.read_text().replace('targets = ["desktop-x86_64"]\n[models.wrong_inputs]',
                                        'targets = ["desktop-x86_64"]\nseed = 7\n[models.wrong_inputs]')
    assert "seed = 7" in text
    changed.write_text(text.replace('inputs = "wrong_inputs.npz"', f'inputs = "{zoo_file.parent / "wrong_inputs.npz"}"'))
    doc, _ = run_json(changed, "-o", tmp_path / "out", "--cache-dir", cache)
    cached = {(c["model"], c["target"]): c["cached"] for c in doc["cells"]}
    assert cached[("digits", "desktop-x86_64")] and cached[("digits", "rpi4")]
    assert not cached[("swish", "desktop-x86_64")]
    swish = next(c for c in doc["cells"] if c["model"] == "swish")
    assert swish["status"] == "passed"


def test_a_killed_worker_is_a_crashed_cell_and_the_matrix_is_still_reported(zoo_file, tmp_path):
    doc, proc = run_json(zoo_file, "-o", tmp_path / "out", "--no-cache", "--timeout", "0.5", code=1)
    statuses = {(c["model"], c["target"]): c["status"] for c in doc["cells"]}
    # wrong inputs are refused before any tool runs: that error may come inside the 0.5 s
    assert statuses.pop(("wrong_inputs", "desktop-x86_64")) in ("crashed", "error")
    assert set(statuses.values()) == {"crashed"}, statuses   # a golden run alone takes longer
    assert all("timed out" in c["error"]["message"] for c in doc["cells"] if c["status"] == "crashed")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("text, expected", [
    (None, "not found"),
    ("models = [", "not valid TOML"),
    ("colour = 1\n[models.a]\npath = 'x'", "unknown key"),
    ("[models.a]\npath = 'missing.pdmodel'", "not found"),
    (f"[models.a]\npath = '{example.MODEL}'\ntargets = ['no-such-board']", "no-such-board"),
])
def test_zoo_file_mistakes_are_user_errors(tmp_path, text, expected):
    zoo = tmp_path / "zoo.toml"
    if text is not None:
        zoo.write_text(text)
    proc = zoo_cli(zoo, "-o", tmp_path / "out", "--cache-dir", tmp_path / "cache")
    assert proc.returncode == 2, proc.stderr
    assert expected in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("where", ["zoo-file", "profile-file"])
def test_a_zoo_or_profile_file_that_is_not_text_is_one_error(tmp_path, where):
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe[models]\n")
    zoo = tmp_path / "binary.toml"
    if where == "profile-file":
        zoo = tmp_path / "zoo.toml"
        zoo.write_text(f'[models.a]\npath = "{example.MODEL}"\ntargets = ["binary.toml"]\n')
    proc = zoo_cli(zoo, "-o", tmp_path / "out", "--no-cache")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "binary.toml" in proc.stderr


@pytest.mark.parametrize("option, value", [("--timeout", "nan"), ("--timeout", "-1"), ("--max-memory", "nan")])
def test_a_limit_that_is_no_positive_number_is_one_error_before_work(tmp_path, option, value):
    """`--timeout nan` (or -1) reported every cell as crashed in 0.0 s; `--max-memory nan` was a ValueError
    traceback (NaN passed the `<= 0` test) (issue 27, finding 11)."""
    (tmp_path / "zoo.toml").write_text(f'[models.a]\npath = "{example.MODEL}"\n')
    proc = zoo_cli(tmp_path / "zoo.toml", "-o", tmp_path / "out", "--no-cache", option, value)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"{option}" in proc.stderr and "must be a positive number" in proc.stderr
    assert not any((tmp_path / "out").glob("a.*"))


@pytest.mark.ray
def test_ray_gives_the_same_verdicts_as_a_local_run(first_run, zoo_file, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'wherry[ray]'")
    doc, _, _, _ = first_run
    on_ray, proc = run_json(zoo_file, "-o", tmp_path / "out", "--no-cache", "--ray", "local", code=1)
    assert on_ray["backend"] == "ray"
    assert verdicts(on_ray) == verdicts(doc)
    assert (tmp_path / "out" / "digits.rpi4" / "manifest.json").is_file()
    assert (tmp_path / "out" / "digits.rpi4" / "check.html").is_file()   # the bundle's page travels with it
    assert all(c["peak_rss_mb"] for c in on_ray["cells"] if c["status"] != "error")


def _descendants(pid: int) -> set:
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.add(child)
            todo.append(child)
    return found


def test_ctrl_c_stops_the_running_workers(zoo_file, tmp_path):
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "wherry.convert.cli", "zoo", str(zoo_file), "-o", str(tmp_path),
                             "--no-cache", "-j", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO, preexec_fn=sigint_as_in_a_terminal)
    deadline, workers = time.monotonic() + 120, set()
    while time.monotonic() < deadline and not workers:
        time.sleep(0.5)
        workers = _descendants(proc.pid)
    assert workers, "no worker process started"
    time.sleep(1)
    workers = _descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr
    time.sleep(0.5)
    assert _alive(workers) == []


def _profile_file(folder: Path, name: str) -> Path:
    from wherry.targets.profile import PROFILE_DIR
    text = (PROFILE_DIR / "desktop-x86_64.toml").read_text().replace('name = "desktop-x86_64"', f'name = "{name}"')
    assert f'name = "{name}"' in text
    (folder / f"{name}.toml").write_text(text)
    return folder / f"{name}.toml"


def test_a_target_given_as_a_profile_file_gets_its_result_and_bundle(tmp_path):
    """The worker reported the cell under the profile's name, the zoo looked it up under the file's path:
    "error: no result" though the bundle was written."""
    profile = _profile_file(tmp_path, "my-desktop")
    (tmp_path / "zoo.toml").write_text(f"""
targets = ["{profile}"]
[models.digits]
path = "{example.MODEL}"
inputs = "{example.INPUTS}"
""")
    doc, proc = run_json(tmp_path / "zoo.toml", "-o", tmp_path / "out", "--no-cache", code=0)
    (cell,) = doc["cells"]
    assert cell["status"] == "passed", cell
    assert (tmp_path / "out" / "digits.my-desktop" / "manifest.json").is_file()


def test_two_targets_with_one_profile_name_are_refused_before_work(tmp_path):
    _profile_file(tmp_path, "desktop-x86_64")   # a copy that names itself like the built-in profile
    (tmp_path / "zoo.toml").write_text(f"""
targets = ["desktop-x86_64", "desktop-x86_64.toml"]
[models.digits]
path = "{example.MODEL}"
""")
    proc = zoo_cli(tmp_path / "zoo.toml", "-o", tmp_path / "out", "--no-cache")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "both the profile 'desktop-x86_64'" in proc.stderr and "overwrite" in proc.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_two_models_whose_cells_meet_in_one_folder_are_refused_before_work(tmp_path):
    """Model `a` on profile `b.c` and model `a.b` on profile `c` are both the bundle a.b.c: the second cell
    overwrote the first and both reported passed (issue 27, finding 4, across models)."""
    _profile_file(tmp_path, "b.c")
    _profile_file(tmp_path, "c")
    (tmp_path / "zoo.toml").write_text(f"""
[models.a]
path = "{example.MODEL}"
targets = ["b.c.toml"]
[models."a.b"]
path = "{example.MODEL}"
targets = ["c.toml"]
""")
    proc = zoo_cli(tmp_path / "zoo.toml", "-o", tmp_path / "out", "--no-cache")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "would both be the bundle a.b.c" in proc.stderr
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def _alive(pids) -> list:
    return [p for p in pids if Path(f"/proc/{p}").exists()
            and "zombie" not in Path(f"/proc/{p}/status").read_text().lower()]


def test_kill_9_of_the_zoo_ends_its_workers_and_nothing_is_published_after(tmp_path):
    """A SIGKILLed zoo runs no clean-up: its workers (and their tools) must die with it by themselves,
    and never publish a bundle into -o for a job that is gone."""
    import signal

    (tmp_path / "zoo.toml").write_text(f"""
targets = ["desktop-x86_64"]
[models.digits]
path = "{example.MODEL}"
inputs = "{example.INPUTS}"
[models.swish]
path = "{export_legal_model('swish')}"
""")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "wherry.convert.cli", "zoo", str(tmp_path / "zoo.toml"), "-o",
                             str(out), "--no-cache", "-j", "2"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=REPO, start_new_session=True)
    deadline, workers = time.monotonic() + 120, set()
    while time.monotonic() < deadline and len(workers) < 2:
        time.sleep(0.2)
        workers = _descendants(proc.pid)
    assert workers, "no worker process started"
    time.sleep(1)
    workers |= _descendants(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 15
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _alive(workers) == []
    time.sleep(1)
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")] == []


def test_a_cell_nobody_verified_is_unverified_never_passed(tmp_path):
    (tmp_path / "zoo.toml").write_text(f"""
targets = ["desktop-x86_64"]
[models.digits]
path = "{example.MODEL}"
inputs = "{example.INPUTS}"
verify = false
""")
    doc, proc = run_json(tmp_path / "zoo.toml", "-o", tmp_path / "out", "--no-cache", code=0)
    cell = doc["cells"][0]
    assert cell["status"] == "unverified" and doc["summary"]["passed"] == 0 and doc["summary"]["unverified"] == 1
    assert {a["verdict"] for a in cell["artifacts"]} == {"not verified"}
