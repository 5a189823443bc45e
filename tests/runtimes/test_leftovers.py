"""Leftovers of killed runs are swept by the next run, and only what is provably stale (issue 27, finding 12):
a runner killed with kill -9 left its uploads (its temporary work directory, or bundles in its --dir), a killed
build-lite its ~240 MB source and build trees and partial cache folders, a killed zoo partial cache entries;
nothing removed them. Each is removed now by the next run when its owner process is gone (same host) or a lock
proves nobody uses it; a live owner's folders are never touched. The runner also keeps a request log (the
500 hint says "see the runner's log"; before, its log lines never reached standard error). The publish part
(staging folders beside a bundle) is in test_publish.py."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from support.hostile_fixtures import RunnerProcess, request, tar_bytes
from support.runtime_fixtures import copy_bundle, onnx_only, rt_bundle, rt_feeds, rt_models, rt_reference  # noqa: F401
from wherry.runtimes import leftovers


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _owned(parent: Path, prefix: str, pid: int, host: str = None) -> Path:
    folder = parent / f"{prefix}-{host or leftovers.host()}-{pid}-abc123"
    folder.mkdir(parents=True)
    (folder / "data").write_bytes(b"x" * 1000)
    return folder


def test_sweep_removes_only_folders_of_gone_owners_on_this_host(tmp_path):
    dead = _owned(tmp_path, "wherry-x", _dead_pid())
    mine = _owned(tmp_path, "wherry-x", os.getpid())
    live = _owned(tmp_path, "wherry-x", os.getppid())
    elsewhere = _owned(tmp_path, "wherry-x", _dead_pid(), host="otherhost")
    unrelated = _owned(tmp_path, "wherry-y", _dead_pid())
    assert leftovers.sweep(tmp_path, "wherry-x") == [dead]
    assert not dead.exists() and mine.exists() and live.exists() and elsewhere.exists() and unrelated.exists()


def _runner_work_dirs(tmp: Path):
    return [p for p in tmp.iterdir() if p.name.startswith("wherry-runner-")]


def test_a_killed_runners_uploads_are_removed_by_the_next_runner(onnx_only, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {"TMPDIR": str(tmp)}
    first = RunnerProcess(env=env)
    assert request(first.url + "/bundles", "POST", tar_bytes(onnx_only))[0] == 201
    [left] = _runner_work_dirs(tmp)
    first.stop(signal.SIGKILL)
    assert left.is_dir() and any(left.iterdir()), "kill -9 leaves the uploads behind"
    alive = RunnerProcess(env=env)   # a second runner meanwhile: its own directory is never swept
    try:
        third = RunnerProcess(env=env)
        try:
            assert not left.exists(), "the killed runner's uploads outlived the next start"
            assert len(_runner_work_dirs(tmp)) == 2   # the two live runners' own
        finally:
            third.stop()
        assert request(alive.url + "/info")[0] == 200
    finally:
        alive.stop()


def test_a_killed_runners_dir_is_cleaned_and_shared_dirs_are_refused(onnx_only, tmp_path):
    chosen = tmp_path / "chosen"
    first = RunnerProcess("--dir", str(chosen))
    assert request(first.url + "/bundles", "POST", tar_bytes(onnx_only))[0] == 201
    uploaded = [p for p in chosen.iterdir() if not p.name.startswith(".")]
    assert uploaded
    second = subprocess.run([sys.executable, "-m", "wherry.runtimes", "serve", "--port", "0", "--dir", str(chosen)],
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 2 and "another runner is using" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr and all(p.exists() for p in uploaded)
    first.stop(signal.SIGKILL)
    assert all(p.exists() for p in uploaded)
    again = RunnerProcess("--dir", str(chosen))
    try:
        assert not any(p.exists() for p in uploaded), "the killed runner's bundles outlived the next start"
    finally:
        assert again.stop() == 0
    assert chosen.is_dir() and not any(chosen.iterdir()), list(chosen.iterdir())


def test_the_runner_keeps_a_request_log(onnx_only, tmp_path):
    log = tmp_path / "runner.log"
    runner = RunnerProcess("--log", str(log))
    try:
        assert request(runner.url + "/info")[0] == 200
        assert request(runner.url + "/bundles/nope/check", "POST", b"{}")[0] == 404
    finally:
        runner.stop()
    stderr = runner.proc.stderr.read()
    for text in (log.read_text(), stderr):
        assert '"GET /info HTTP/1.1" 200' in text and '"POST /bundles/nope/check HTTP/1.1" 404' in text, text


def test_a_killed_build_lites_trees_are_swept_under_its_lock(tmp_path, monkeypatch):
    from wherry.targets import lite

    monkeypatch.setenv("WHERRY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr("tempfile.tempdir", None)
    (tmp_path / "tmp").mkdir()
    arch_dir = lite.arch_dir("aarch64")
    partial = arch_dir / f"{lite.lib_dir('aarch64').name}.partial-x1y2"
    partial.mkdir(parents=True)
    dead_tree = _owned(tmp_path / "tmp", "wherry-lite-build", _dead_pid())
    live_tree = _owned(tmp_path / "tmp", "wherry-lite-build", os.getppid())
    lite._sweep("aarch64")
    assert not partial.exists() and not dead_tree.exists() and live_tree.exists()


def test_a_killed_zoo_runs_partial_cache_entry_is_swept_by_the_next_store(tmp_path):
    from wherry.convert.zoo.cache import CellCache

    cache = CellCache(tmp_path / "cache")
    key = "ab" + "0" * 62
    shard = tmp_path / "cache" / "ab"
    dead = _owned(shard, f".{'cd' + '1' * 10}.tmp", _dead_pid())
    live = _owned(shard, f".{'cd' + '2' * 10}.tmp", os.getppid())
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text("{}")
    cache.put(key, bundle, {"status": "passed", "at": time.time()})
    assert cache.get(key) is not None
    assert not dead.exists() and live.exists()
    assert sorted(p.name for p in shard.iterdir()) == sorted([key, live.name])
