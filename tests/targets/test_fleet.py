"""The fleet job on a real labgrid farm on 127.0.0.1: a labgrid coordinator, an exporter publishing
three local boards (two HTTP runners, one sshd) and one board that is down, tagged places, and the
fleet job from two concurrent clients. Everything is real: labgrid's own coordinator, exporter and
client protocol, wherry's runners; only the network is loopback."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from contextlib import ExitStack
from pathlib import Path

import jsonschema
import pytest

pytest.importorskip("labgrid", reason="labgrid is not installed: pip install 'wherry[labgrid]' (or the test extra)")

from support.board_fixtures import free_port, http_board, sshd_board, wait_for_port  # noqa: E402
from support.paths import REPO  # noqa: E402
from wherry.convert.example import INPUTS, MODEL  # noqa: E402

BIN = Path(sys.executable).parent
BOARDS = ["rpi-http-1", "rpi-http-2", "rpi-ssh-1"]


def _labgrid_client(coordinator, *args, env=None):
    return subprocess.run([str(BIN / "labgrid-client"), "-x", coordinator, *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def bundle(wherry, tmp_path_factory):
    out = tmp_path_factory.mktemp("fleet-bundle")
    wherry("convert", MODEL, "--inputs", INPUTS, "-t", "rpi4", "-o", out, check=0)
    return out / "digits_cnn.rpi4"


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """(coordinator address, environment for the jobs, coordinator log) of a running farm."""
    work = tmp_path_factory.mktemp("farm")
    with ExitStack() as stack:
        http_1 = stack.enter_context(http_board(token="board-1-secret"))
        http_2 = stack.enter_context(http_board())
        ssh_url, ssh_env, _, ssh_port = stack.enter_context(sshd_board(work))
        down_port = free_port()  # a board that is switched off: nothing answers there
        services = {"rpi-http-1": ("http", int(http_1.rsplit(":", 1)[1])),
                    "rpi-http-2": ("http", int(http_2.rsplit(":", 1)[1])),
                    "rpi-ssh-1": ("root", ssh_port),
                    "rpi-off-1": ("http", down_port)}
        # the exporter configuration is a Jinja template: its comments start with "##"
        (work / "exporter.yaml").write_text("## boards on this host\n" + "".join(
            f"{name}:\n  location: loopback\n  NetworkService:\n    address: 127.0.0.1\n"
            f"    username: {user}\n    port: {port}\n" for name, (user, port) in services.items()))
        port = free_port()
        coordinator = f"127.0.0.1:{port}"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        log = work / "coordinator.log"
        coord = subprocess.Popen([str(BIN / "labgrid-coordinator"), "-l", coordinator], cwd=work, env=env,
                                 stdout=open(log, "w"), stderr=subprocess.STDOUT)
        stack.callback(lambda: (coord.terminate(), coord.wait(timeout=10)))
        wait_for_port(port, coord)
        exporter = subprocess.Popen([str(BIN / "labgrid-exporter"), "-c", coordinator, "-n", "rack",
                                     "--hostname", "127.0.0.1", str(work / "exporter.yaml")], cwd=work, env=env,
                                    stdout=open(work / "exporter.log", "w"), stderr=subprocess.STDOUT)
        stack.callback(lambda: (exporter.terminate(), exporter.wait(timeout=10)))
        # places as an admin makes them: create, match the exporter's resource, tag by board class
        tags = {name: "board=digits-ci" if name != "rpi-off-1" else "board=retired" for name in services}
        for step in (lambda n: ("create",), lambda n: ("add-match", f"rack/{n}/NetworkService"),
                     lambda n: ("set-tags", tags[n])):
            procs = [subprocess.Popen([str(BIN / "labgrid-client"), "-x", coordinator, "-p", n, *step(n)],
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for n in services]
            for proc in procs:
                assert proc.wait(timeout=60) == 0, proc.stdout.read()
        deadline = time.monotonic() + 30
        while "rpi-off-1" not in _labgrid_client(coordinator, "resources").stdout:
            assert time.monotonic() < deadline, (work / "exporter.log").read_text()
            time.sleep(0.3)
        # per-board secrets come from the job's environment, never from the coordinator
        job_env = {**ssh_env, "WHERRY_TOKEN_RPI_HTTP_1": "board-1-secret", "WHERRY_FLEET_HOSTS": "127.0.0.1",
                   "WHERRY_PYTHON_RPI_SSH_1": sys.executable}
        yield coordinator, job_env, log


def _fleet(coordinator, env, *args, as_json=True):
    return subprocess.Popen([sys.executable, "-m", "wherry.convert.cli", "fleet", "check", *map(str, args),
                             "--coordinator", coordinator, *(["--json"] if as_json else [])], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, **env})


def test_two_concurrent_fleet_jobs(farm, bundle, tmp_path):
    coordinator, env, log = farm
    start = time.monotonic()
    # ci-a reads the JSON report, ci-b the terminal matrix; both write JUnit
    jobs = {user: _fleet(coordinator, {**env, "LG_USERNAME": user}, bundle, "--tag", "board=digits-ci",
                         "--junit", tmp_path / f"{user}.xml", as_json=user == "ci-a")
            for user in ("ci-a", "ci-b")}
    outputs = {user: job.communicate(timeout=300) for user, job in jobs.items()}
    seconds = time.monotonic() - start
    table = outputs["ci-b"][0]
    print(table)
    assert jobs["ci-b"].returncode == 0, outputs["ci-b"]
    for place in BOARDS:
        row = next(line for line in table.splitlines() if line.startswith(place + " "))
        assert "model.onnx pass" in row and "model.arm.nb n/v here" in row, row
    assert table.rstrip().endswith("fleet: 3 board(s): 3 passed")
    for user, (stdout, stderr) in outputs.items():
        suites = {s.get("name"): s for s in ET.parse(tmp_path / f"{user}.xml").getroot().iter("testsuite")}
        assert sorted(suites) == BOARDS and all(s.get("failures") == "0" for s in suites.values())
        if user == "ci-b":
            continue
        assert jobs[user].returncode == 0, f"{user}: {stderr}\n{stdout}"
        report = json.loads(stdout)
        print(user, [(b["place"], b["waited_s"], b["seconds"]) for b in report["boards"]], f"{seconds:.1f} s")
        jsonschema.validate(report, json.loads((REPO / "docs/schemas/fleet.schema.json").read_text()))
        assert report["ok"] is True
        boards = {b["place"]: b for b in report["boards"]}
        assert sorted(boards) == BOARDS  # every board of the tag, and not the retired one
        for place, board in boards.items():
            assert board["status"] == "passed", board
            artifacts = {a["file"]: a["status"] for a in board["checks"][bundle.name]["report"]["artifacts"]}
            assert artifacts["model.onnx"] == "passed"
            assert board["info"]["machine"]
        assert boards["rpi-ssh-1"]["device"].startswith("ssh://root@127.0.0.1")
        assert boards["rpi-http-1"]["device"].startswith("http://127.0.0.1")
    # the locks held: per place, acquisitions and releases alternate - never two holders at once
    events = re.findall(r"^(\S+): place (acquired by \S+|released)$", log.read_text(), re.M)
    for place in BOARDS:
        sequence = [what for name, what in events if name == place]
        assert len(sequence) == 4, (place, sequence)  # each job had it once
        assert [s.startswith("acquired") for s in sequence] == [True, False, True, False], sequence
        holders = {s.split()[-1].split("/")[-1] for s in sequence if s.startswith("acquired")}
        assert holders == {"ci-a", "ci-b"}, sequence
    # one job found a place held by the other and said by whom while it waited
    waits = "".join(stderr for _, stderr in outputs.values())
    assert re.search(r"place rpi-\S+ is held by \S*ci-[ab]", waits), waits
    assert seconds < 60, seconds


def test_unavailable_board_is_not_a_failed_check(farm, bundle):
    coordinator, env, _ = farm
    job = _fleet(coordinator, {**env, "LG_USERNAME": "ci-c"}, bundle, "--tag", "board=retired")
    stdout, stderr = job.communicate(timeout=120)
    assert job.returncode == 3, stderr
    board = json.loads(stdout)["boards"][0]
    assert (board["place"], board["status"]) == ("rpi-off-1", "unavailable") and "board unavailable" in board["message"]
    skipped = _fleet(coordinator, {**env, "LG_USERNAME": "ci-c"}, bundle, "--tag", "board=retired",
                     "--skip-unavailable", as_json=False)
    stdout, stderr = skipped.communicate(timeout=120)
    print(stdout)
    assert skipped.returncode == 0, stderr
    assert re.search(r"^rpi-off-1 .*board unavailable", stdout, re.M), stdout
    # the place was released and its reservation cancelled: free for the next job
    places = _labgrid_client(coordinator, "-p", "rpi-off-1", "show").stdout
    assert "acquired: None" in places, places


def test_network_service_to_device_url_and_per_place_secrets():
    from wherry.targets.fleet.labgrid_driver import device_url, place_setting, place_variable

    assert device_url("192.0.2.11", "http", 8765) == "http://192.0.2.11:8765"
    assert device_url("192.0.2.12", "pi", 22, "/home/pi/venv/bin/python") == \
        "ssh://pi@192.0.2.12:22?python=/home/pi/venv/bin/python"
    assert device_url("fd00::5", "http", 80) == "http://[fd00::5]:80"
    assert place_variable("WHERRY_TOKEN", "rpi4-01.lab") == "WHERRY_TOKEN_RPI4_01_LAB"
    environ = {"WHERRY_TOKEN": "shared", "WHERRY_TOKEN_RPI4_01": "own"}
    assert place_setting("WHERRY_TOKEN", "rpi4-01", environ) == "own"
    assert place_setting("WHERRY_TOKEN", "rpi4-02", environ) == "shared"
    assert place_setting("WHERRY_PYTHON", "rpi4-02", environ) is None


def test_a_token_goes_only_to_addresses_the_job_lists():
    """The coordinator (no authentication) says where a place's board is: a token must not follow it
    to an address the job's own environment does not list."""
    from wherry.targets.fleet.labgrid_driver import TokenWithheld, token_for

    environ = {"WHERRY_TOKEN": "shared", "WHERRY_TOKEN_RPI4_01": "own",
               "WHERRY_FLEET_HOSTS": "rpi4-01.lab:8765, 10.0.0.7 ,[fe80::1]:8765"}
    assert token_for("rpi4-01", "rpi4-01.lab", 8765, environ) == "own"
    assert token_for("rpi4-02", "10.0.0.7", 9000, environ) == "shared"      # a host alone: any port
    assert token_for("rpi4-02", "fe80::1", 8765, environ) == "shared"
    for address, port in [("evil.example", 8765), ("rpi4-01.lab", 8766), ("10.0.0.70", 9000), ("fe80::1", 1)]:
        with pytest.raises(TokenWithheld, match="WHERRY_FLEET_HOSTS"):
            token_for("rpi4-01", address, port, environ)
    with pytest.raises(TokenWithheld):
        token_for("rpi4-01", "127.0.0.1", 8765, {"WHERRY_TOKEN": "shared"})   # nothing listed: nowhere
    assert token_for("rpi4-01", "evil.example", 1, {}) is None            # no token, nothing to withhold


def test_a_place_moved_to_an_unlisted_address_gets_no_token(farm, bundle):
    coordinator, env, _ = farm
    job = _fleet(coordinator, {**env, "LG_USERNAME": "ci-d", "WHERRY_FLEET_HOSTS": "board.lab"}, bundle,
                 "--tag", "board=digits-ci")
    stdout, stderr = job.communicate(timeout=300)
    boards = {b["place"]: b for b in json.loads(stdout)["boards"]}
    assert job.returncode != 0, stderr
    assert boards["rpi-http-1"]["status"] == "error"
    assert "its token was not sent" in boards["rpi-http-1"]["message"]
    assert boards["rpi-http-2"]["status"] == "passed"   # a runner without a token: nothing withheld


_BOMB = "targets: {main: {}}\n" + "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10))


@pytest.mark.parametrize("text, expected", [
    (_BOMB, "anchors or aliases"),
    ("targets: [unclosed\n", "not valid YAML"),
    ("- just\n- a list\n", "no top-level 'targets'"),
    (None, "cannot read the --env file"),
    (b"\xff\xfe targets", "not UTF-8"),
    # issue 27 finding 11: tracebacks before (RecursionError, ModuleNotFoundError, AttributeError, TypeError)
    ("targets: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ("targets: {main: {}}\nimports:\n  - no_such_module_of_wherry\n", "No module named"),
    ("targets: 5\n", "no target 'main'"),
    ("targets: {main: {}}\noptions: 5\n", "labgrid cannot use the --env file"),
])
def test_a_bad_env_file_is_refused_before_any_place_is_reserved(bundle, tmp_path, text, expected):
    """A 1.3 KB alias bomb as --env hung the job for minutes while it held a board; other bad files
    were tracebacks. Each is one error, at once, before the coordinator is even asked."""
    env = tmp_path / "env.yaml"
    if isinstance(text, bytes):
        env.write_bytes(text)
    elif text is not None:
        env.write_text(text)
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "fleet", "check", str(bundle), "--coordinator",
                           "127.0.0.1:1", "--env", str(env)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert expected in proc.stderr and "coordinator" not in proc.stderr.split("hint")[0], proc.stderr
    assert time.monotonic() - start < 30


def test_fleet_without_a_coordinator_is_a_clear_error(bundle):
    port = free_port()
    proc = subprocess.run([sys.executable, "-m", "wherry.convert.cli", "fleet", "check", str(bundle),
                           "--coordinator", f"127.0.0.1:{port}", "--tag", "board=x"], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and "cannot reach the labgrid coordinator" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_wherry_pytest_plugin_beside_labgrids(bundle, tmp_path):
    """labgrid's pytest plugin loads whenever labgrid is installed and reads every item's fixture names;
    wherry's parity items must not break it."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "--wherry-bundle",
                           str(bundle), "--wherry-artifact", "model.onnx"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "passed" in proc.stdout and "AttributeError" not in proc.stdout
