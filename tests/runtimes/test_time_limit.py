"""Native runs get a time limit derived from the golden run (issue 27, finding 10): a broken artifact that
never finishes (here onnxruntime on an endless Loop; a bit-flipped, re-sealed .nb did the same in Paddle Lite)
ends in one typed 'did not finish' verdict after 50 x the golden run's time, at least 60 s, instead of the
600 s default; --timeout (check) and --check-timeout (convert) override it. Before the fix, check waited
600 s for such an artifact and convert's own verification had no limit at all."""
from __future__ import annotations

import json
import math
import time

import pytest

from wherry import runtimes
from wherry.convert.example import MODEL
from wherry.runtimes import time_limit

from support.hostile_fixtures import loop_bundle


def test_the_limit_is_derived_from_the_golden_run_with_a_floor_and_a_ceiling():
    assert time_limit.derived(0.004) == time_limit.FLOOR_S == 60
    assert time_limit.derived(3.0) == 150.0
    assert time_limit.derived(1e6) == time_limit.CEILING_S
    for unknown in (None, float("nan"), -1.0):
        assert time_limit.derived(unknown) == time_limit.DEFAULT_S == 600
    assert time_limit.choose(time_limit.AUTO, 2.0) == 100.0
    assert time_limit.choose(5, 2.0) == 5.0          # an explicit limit wins
    assert time_limit.choose(0, 2.0) is None         # 0: no limit
    assert time_limit.choose(None, 2.0) is None


def _with_golden_seconds(bundle, seconds):
    data = json.loads((bundle / "manifest.json").read_text())
    data["golden"]["seconds"] = seconds
    (bundle / "manifest.json").write_text(json.dumps(data))
    return bundle


def test_an_endless_artifact_stops_at_the_derived_limit(tmp_path, monkeypatch):
    """The default (no timeout given) is the derived limit: with the floor lowered to 2 s for the test, the
    endless artifact of a bundle whose golden run took 10 ms is stopped after 2 s with the typed error."""
    bundle = _with_golden_seconds(loop_bundle(tmp_path / "loop"), 0.01)
    monkeypatch.setattr(time_limit, "FLOOR_S", 2.0)
    start = time.monotonic()
    report = runtimes.check(bundle)
    assert time.monotonic() - start < 30
    result = report.results[0]
    assert result.status == "failed" and "did not finish" in result.reason and "within 2 s" in result.reason


@pytest.mark.slow
def test_check_without_timeout_stops_an_endless_artifact_at_the_floor_not_600_s(tmp_path, wherry):
    """As a user runs it: `wherry check` with no --timeout on the endless bundle ends after the 60 s floor."""
    bundle = _with_golden_seconds(loop_bundle(tmp_path / "loop"), 0.01)
    start = time.monotonic()
    proc = wherry("check", bundle, timeout=300)
    elapsed = time.monotonic() - start
    assert proc.returncode == 1 and "did not finish" in proc.stdout and "within 60 s" in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr
    assert elapsed < 120


@pytest.mark.parametrize("value", [-1, "fast", float("inf"), True])
def test_a_bad_golden_time_is_a_malformed_manifest(tmp_path, value):
    bundle = loop_bundle(tmp_path / "loop")
    data = json.loads((bundle / "manifest.json").read_text())
    data["golden"]["seconds"] = value if not (isinstance(value, float) and math.isinf(value)) else 1e400
    (bundle / "manifest.json").write_text(json.dumps(data).replace("Infinity", "1e400"))
    with pytest.raises(runtimes.BundleError, match="golden.seconds"):
        runtimes.check(bundle)


def test_convert_records_the_golden_run_and_check_timeout_reaches_its_verification(tmp_path, wherry):
    """convert writes golden.seconds; --check-timeout bounds its own verification (a limit far below any
    real load turns every verified artifact into 'did not finish', proof that the limit is applied)."""
    out = tmp_path / "out"
    proc = wherry("convert", MODEL, "-o", out, "--format", "onnx", "--check-timeout", "0.001", "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    bundle = next(out.iterdir())
    seconds = json.loads((bundle / "manifest.json").read_text())["golden"]["seconds"]
    assert 0 < seconds < 30
    report = json.loads(proc.stdout)
    reasons = [a["reason"] for b in report["bundles"] for a in b["artifacts"]]
    assert reasons and all("did not finish" in r and "0.001 s" in r for r in reasons), reasons
    # and the bundle checks fine afterwards with the derived limit (the default)
    assert wherry("check", bundle).returncode == 0


def test_a_limit_that_is_not_a_number_is_refused_and_never_means_no_limit(wherry, tmp_path):
    """`check --timeout nan` ran with no limit at all (the CLI's `nan > 0` is False, read as 0: none), and
    `convert --check-timeout nan` reached the child's select() as a ValueError traceback (issue 27, finding 10)."""
    with pytest.raises(runtimes.InputError, match="not a number of seconds"):
        time_limit.choose(math.nan, 0.01)
    assert time_limit.choose(math.inf, 0.01) is None and time_limit.choose(-1.0, 0.01) is None
    assert time_limit.choose(0.5, 0.01) == 0.5
    proc = wherry("check", loop_bundle(tmp_path / "b"), "--timeout", "nan")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "not a number of seconds" in proc.stderr
