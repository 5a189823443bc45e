"""Every option of check (and run, bench) takes effect on a remote board, over HTTP and over ssh, or is
refused with a message: never silently dropped. A board that cannot be reached is "board unavailable"
(exit 3), not a failed check. The boards are real: an HTTP runner process and an sshd on 127.0.0.1."""
from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from support.board_fixtures import free_port, http_board, sshd_board, wherry_cli
from support.paths import REPO
from wherry.convert.example import INPUTS, MODEL


@pytest.fixture(scope="module")
def bundle(wherry, tmp_path_factory):
    out = tmp_path_factory.mktemp("remote-options")
    wherry("convert", MODEL, "--inputs", INPUTS, "-t", "rpi4", "-o", out, check=0)
    return out / "digits_cnn.rpi4"


@pytest.fixture(scope="module")
def http_url():
    with http_board() as url:
        yield url


@pytest.fixture(scope="module")
def ssh_board(tmp_path_factory):
    with sshd_board(tmp_path_factory.mktemp("sshd")) as (url, env, _, _port):
        yield f"{url}?python={sys.executable}", env


@pytest.fixture(params=["http", "ssh"])
def board(request, http_url):
    """(device URL, environment) of each kind of remote board."""
    if request.param == "http":
        return http_url, {}
    return request.getfixturevalue("ssh_board")


def _check(board, bundle, *options):
    url, env = board
    return wherry_cli("check", bundle, "--device", url, *options, env=env)


def _artifacts(proc):
    return {a["file"]: a for a in json.loads(proc.stdout)["artifacts"]}


def test_junit_is_written_on_the_host(board, bundle, tmp_path):
    junit = tmp_path / "remote.xml"
    proc = _check(board, bundle, "--junit", junit)
    assert proc.returncode == 0, proc.stderr
    cases = [case.get("name") for case in ET.parse(junit).getroot().iter("testcase")]
    assert any(name.startswith("model.onnx::") for name in cases), cases
    assert "PASS" in proc.stdout  # the table, as a local check prints it


def test_html_report_is_written_on_the_host(board, bundle, tmp_path):
    """--html is honoured remotely, never dropped: the page lands on the host, for a failing check too."""
    page = tmp_path / "remote.html"
    proc = _check(board, bundle, "--html", page, "--min-cosine", "1.5", "--artifact", "model.onnx")
    assert proc.returncode == 1, proc.stderr
    text = page.read_text()
    assert "wherry parity report: digits_cnn" in text and "FAIL" in text and "model.onnx" in text
    assert "<script" not in text


def test_junit_of_a_failed_check_comes_back_too(board, bundle, tmp_path):
    junit = tmp_path / "failed.xml"
    proc = _check(board, bundle, "--junit", junit, "--min-cosine", "1.5", "--artifact", "model.onnx")
    assert proc.returncode == 1, proc.stderr
    assert ET.parse(junit).getroot().find("testsuite").get("failures") == "1"


def test_tolerances_take_effect(board, bundle):
    # a cosine above 1 cannot be met: the check fails on the board, with the bound given here
    failed = _check(board, bundle, "--json", "--min-cosine", "1.5", "--artifact", "model.onnx")
    assert failed.returncode == 1, failed.stderr
    onnx = _artifacts(failed)["model.onnx"]
    assert onnx["status"] == "failed" and "cosine" in onnx["outputs"][0]["reason"]
    # --rtol/--atol for all outputs, and NAME:VALUE for one, reach the board's parity engine
    name = onnx["outputs"][0]["name"]
    proc = _check(board, bundle, "--json", "--rtol", "0.25", "--atol", f"{name}:0.5", "--min-top1", "0.9")
    assert proc.returncode == 0, proc.stderr
    tolerance = _artifacts(proc)["model.onnx"]["outputs"][0]["tolerance"]
    assert (tolerance["rtol"], tolerance["atol"], tolerance["min_top1"]) == (0.25, 0.5, 0.9)


def test_unknown_output_name_in_a_tolerance_is_an_error(board, bundle):
    proc = _check(board, bundle, "--atol", "no_such_output:1e-3")
    assert proc.returncode == 2 and "no_such_output" in proc.stderr and "Traceback" not in proc.stderr


def test_artifact_selects_what_is_checked(board, bundle):
    proc = _check(board, bundle, "--json", "--artifact", "model.onnx")
    assert proc.returncode == 0, proc.stderr
    assert list(_artifacts(proc)) == ["model.onnx"]


def test_strict_fails_when_nothing_is_verified(board, bundle):
    # the board has no ARM Paddle Lite: checking only the .nb verifies nothing, which --strict names
    proc = _check(board, bundle, "--json", "--strict", "--artifact", "model.arm.nb")
    assert proc.returncode == 1
    document = json.loads(proc.stdout)
    assert document["strict"] is True
    assert any("no artifact could be verified" in p for p in document["strict_failures"])


def test_timeout_takes_effect(board, bundle):
    proc = _check(board, bundle, "--json", "--timeout", "0.01", "--artifact", "model.onnx")
    assert proc.returncode == 1, proc.stderr
    onnx = _artifacts(proc)["model.onnx"]
    assert onnx["status"] == "failed" and "within 0.01 s" in onnx["reason"], onnx["reason"]


def test_no_isolate(board, bundle):
    url, _ = board
    proc = _check(board, bundle, "--no-isolate", "--artifact", "model.onnx")
    if url.startswith("http"):  # the HTTP runner always isolates: refused, not ignored
        assert proc.returncode == 2 and "--no-isolate is not available" in proc.stderr
    else:  # over ssh the board's runner does as told
        assert proc.returncode == 0, proc.stderr


def test_run_options_take_effect(board, bundle, tmp_path):
    url, env = board
    out = tmp_path / "out.npz"
    # no --inputs: the bundle's golden inputs, as a local run; --backend and --threads go along
    proc = wherry_cli("run", bundle, "--artifact", "model.onnx", "--backend", "onnxruntime", "--threads", "1",
                      "--out", out, "--json", "--device", url, env=env)
    assert proc.returncode == 0, proc.stderr
    document = json.loads(proc.stdout)
    assert document["backend"] == "onnxruntime"
    golden_rows = np.load(INPUTS)["x"].shape[0]
    with np.load(out) as outputs:
        assert outputs[outputs.files[0]].shape[0] == golden_rows
    # a backend that cannot run the artifact is the runner's error, proving --backend reached it
    wrong = wherry_cli("run", bundle, "--artifact", "model.onnx", "--backend", "paddlelite", "--device", url, env=env)
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr


def test_bench_options_take_effect(board, bundle):
    url, env = board
    proc = wherry_cli("bench", bundle, "--artifact", "model.onnx", "--runs", "3", "--warmup", "1", "--threads", "1",
                      "--json", "--device", url, env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["runs"], result["warmup"], result["threads"], result["backend"]) == (3, 1, 1, "onnxruntime")


# ---------------------------------------------------------------------------------------------- versions

def test_old_runner_is_named_too_old(bundle, tmp_path):
    """A real protocol-1 runner (the runtimes package as it was before protocol 2): a bare check still
    works, a check with options is refused as "runner too old" instead of losing them."""
    old = tmp_path / "old"
    (old / "wherry").mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "53792a9", "runtimes"], capture_output=True)
    if archive.returncode != 0:
        pytest.skip("the protocol-1 runner's commit is not in this clone's history (shallow clone)")
    subprocess.run(["tar", "-x", "-C", str(old / "wherry")], input=archive.stdout, check=True)
    with http_board(pythonpath=str(old)) as url:
        bare = wherry_cli("check", bundle, "--device", url, "--json")
        assert bare.returncode == 0, bare.stderr
        proc = wherry_cli("check", bundle, "--device", url, "--atol", "1e-3", "--junit", tmp_path / "j.xml")
        assert proc.returncode == 2 and "runner too old" in proc.stderr and "protocol 1" in proc.stderr
        assert not (tmp_path / "j.xml").exists()


# ---------------------------------------------------------------------------------------------- down vs failing

@pytest.mark.parametrize("scheme", ["http", "ssh"])
def test_unreachable_board_is_unavailable_not_failed(scheme, bundle, tmp_path):
    port = free_port()  # nothing listens there
    url = f"http://127.0.0.1:{port}" if scheme == "http" else f"ssh://root@127.0.0.1:{port}"
    proc = wherry_cli("check", bundle, "--device", url, "--json",
                      env={"WHERRY_SSH_KNOWN_HOSTS": str(tmp_path / "known_hosts")})
    assert proc.returncode == 3, proc.stderr
    assert "board unavailable" in proc.stderr and "Traceback" not in proc.stderr
    assert json.loads(proc.stdout)["error"]["type"] == "BoardUnavailable"


def test_malformed_options_are_refused_and_the_runner_keeps_serving(http_url, bundle):
    import io
    import tarfile
    import urllib.error
    import urllib.request

    def post(path, body):
        request = urllib.request.Request(http_url + path, data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(bundle, arcname=bundle.name)
    status, reply = post("/bundles", archive.getvalue())
    assert status == 201
    check = f"/bundles/{reply['id']}/check"
    for body, words in ((b"not json", "not JSON"), (b"[1]", "not a JSON object"),
                        (b'{"no_isolate": true}', "unknown option"), (b'{"strict": "yes"}', "wrong type"),
                        (b'{"overrides": {"*": {"atol": "big"}}}', "numbers")):
        status, reply = post(check, body)
        assert status == 400 and words in reply["error"], (body, reply)
    status, reply = post(check, b'{"artifacts": ["model.onnx"], "strict": true}')
    assert status == 200 and [a["file"] for a in reply["report"]["artifacts"]] == ["model.onnx"]
    assert reply["strict"] is True and "<testsuite" in reply["junit"]
