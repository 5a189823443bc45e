"""Publishing a bundle (convert --force, --example, the zoo's cache restore) is one step: a kill -9 or an
I/O error at any point leaves the old bundle or the new one at its path, never neither."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from wherry.convert import publish
from wherry.convert.publish import OutputError, replace_bundle
from wherry.convert.zoo import cache as zoo_cache

ROOT = Path(__file__).resolve().parents[2]


def _bundle(path: Path, tag: str) -> Path:
    (path / "golden").mkdir(parents=True)
    (path / "manifest.json").write_text(tag)
    (path / "golden" / "outputs.npz").write_bytes(tag.encode() * 1000)
    return path


def _tag(path: Path) -> str:
    return (path / "manifest.json").read_text()


def _publish_in_child(stage: Path, final: Path, kill_at: str, fallback: bool = False) -> int:
    """replace_bundle in a fresh process that SIGKILLs itself just before step `kill_at`."""
    code = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from wherry.convert import publish
        def fault(step):
            if step == {kill_at!r}:
                os.kill(os.getpid(), signal.SIGKILL)
        publish._before_step = fault
        if {fallback!r}:
            publish._exchange = lambda a, b: False
        publish.replace_bundle(Path({str(stage)!r}), Path({str(final)!r}))
    """)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode


@pytest.mark.parametrize("kill_at", ["exchange", "remove-old"])
def test_kill_9_at_each_step_leaves_a_whole_bundle(tmp_path, kill_at):
    final, stage = _bundle(tmp_path / "m.t", "old"), _bundle(tmp_path / ".m.t.tmp-1", "new")
    assert _publish_in_child(stage, final, kill_at) == -signal.SIGKILL
    assert _tag(final) == ("old" if kill_at == "exchange" else "new")
    assert (final / "golden" / "outputs.npz").stat().st_size == 3000


def test_replaces_and_removes_the_old_bundle(tmp_path):
    final, stage = _bundle(tmp_path / "m.t", "old"), _bundle(tmp_path / ".m.t.tmp-1", "new")
    replace_bundle(stage, final)
    assert _tag(final) == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.t"]


def test_io_error_on_the_second_step_rolls_back(tmp_path, monkeypatch):
    """Where the file system cannot exchange, two renames with a rollback: an I/O error on the second
    leaves the old bundle in place and one readable error."""
    final, stage = _bundle(tmp_path / "m.t", "old"), _bundle(tmp_path / ".m.t.tmp-1", "new")

    def fault(step):
        if step == "move-new":
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(publish, "_exchange", lambda a, b: False)
    monkeypatch.setattr(publish, "_before_step", fault)
    with pytest.raises(OutputError, match="Input/output error") as info:
        replace_bundle(stage, final)
    assert "unchanged" in info.value.hint
    assert _tag(final) == "old" and _tag(stage) == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.t.tmp-1", "m.t"]


def test_failing_to_delete_the_old_bundle_is_not_an_error(tmp_path, monkeypatch):
    final, stage = _bundle(tmp_path / "m.t", "old"), _bundle(tmp_path / ".m.t.tmp-1", "new")

    def fault(step):
        if step == "remove-old":
            raise OSError(5, "Input/output error")

    monkeypatch.setattr(publish, "_before_step", fault)
    replace_bundle(stage, final)
    assert _tag(final) == "new"


def test_fallback_killed_between_renames_is_repaired_by_the_next_publish(tmp_path):
    final, stage = _bundle(tmp_path / "m.t", "old"), _bundle(tmp_path / ".m.t.tmp-1", "new")
    assert _publish_in_child(stage, final, "move-new", fallback=True) == -signal.SIGKILL
    assert not final.exists()   # the only window the fallback has; the next publish closes it
    publish._recover(final)
    assert _tag(final) == "old"
    replace_bundle(stage, final)
    assert _tag(final) == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.t"]


def test_recovery_brings_back_the_bundle_the_interrupted_publish_displaced(tmp_path):
    """Two hidden copies: an older one whose removal failed after an earlier publish, and the one a later
    fallback publish displaced before it was killed. The second is the bundle that was at the path."""
    final = tmp_path / "m.t"
    older, newer = _dead_pid(), _dead_pid()
    first, second = sorted([older, newer], key=str)   # the name that sorts first is the older copy
    _bundle(tmp_path / f".m.t.old-{first}", "older")
    time.sleep(0.05)
    _bundle(tmp_path / f".m.t.old-{second}-x", "displaced")
    os.rename(tmp_path / f".m.t.old-{second}-x", tmp_path / f".m.t.old-{second}")
    publish._recover(final)
    assert _tag(final) == "displaced"


def test_exchange_is_used_on_this_machine(tmp_path):
    """The atomic path is what runs here (Linux, glibc >= 2.28): the two-rename fallback is not the norm."""
    if not sys.platform.startswith("linux"):
        pytest.skip("renameat2 is Linux only")
    a, b = _bundle(tmp_path / "a", "A"), _bundle(tmp_path / "b", "B")
    assert publish._exchange(a, b)
    assert _tag(a) == "B" and _tag(b) == "A"


def test_zoo_cache_restore_killed_mid_publish_keeps_the_old_bundle(tmp_path):
    cached, final = _bundle(tmp_path / "cache" / "bundle", "cached"), _bundle(tmp_path / "out" / "m.t", "old")
    code = textwrap.dedent(f"""
        import os, signal
        from pathlib import Path
        from wherry.convert import publish
        from wherry.convert.zoo import cache
        publish._before_step = lambda step: os.kill(os.getpid(), signal.SIGKILL)
        cache.restore(Path({str(cached)!r}), Path({str(final)!r}))
    """)
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, timeout=60).returncode == -signal.SIGKILL
    assert _tag(final) == "old"
    zoo_cache.restore(cached, final)
    assert _tag(final) == "cached"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_leftovers_of_killed_runs_are_swept_by_the_next_publish(tmp_path):
    """A killed convert leaves its staging folder (or, killed right after the exchange, the old bundle
    under the staging name) beside the bundle; the next publish there removes what a dead run left
    and keeps what a live one is still writing."""
    final = _bundle(tmp_path / "m.t", "old")
    host, dead, alive = publish._host(), _dead_pid(), os.getpid()
    stale = [_bundle(tmp_path / f".m.t.tmp-{host}-{dead}-abc123", "x"), _bundle(tmp_path / f".m.t.old-{dead}", "y")]
    kept = [_bundle(tmp_path / f".m.t.tmp-{host}-{os.getppid()}-live01", "live"),          # a live run
            _bundle(tmp_path / f".m.t.tmp-otherhost-{dead}-abc123", "remote"),              # maybe alive elsewhere
            _bundle(tmp_path / f".m.t.tmp-{host}-{_dead_pid()}-young1", "young"),           # just made
            _bundle(tmp_path / ".other.t.tmp-x-1-abc", "another bundle's")]
    old = time.time() - 2 * publish.STALE_S
    for folder in stale + kept[:2] + kept[3:]:
        os.utime(folder, (old, old))
    stage = publish.stage_dir(final)
    assert stage.name.startswith(f".m.t.tmp-{host}-{alive}-")
    _bundle(stage / "b", "new")
    replace_bundle(stage / "b", final)
    shutil.rmtree(stage)
    assert _tag(final) == "new"
    assert [p.exists() for p in stale] == [False, False]
    assert all(p.exists() for p in kept)


def test_a_killed_conversions_work_folder_is_swept_by_the_next_conversion(tmp_path):
    """A kill -9 during a conversion leaves its scratch folder in -o (legal programs, exported artifacts): it is
    named for its owner, and the next conversion into that -o removes it once its owner is gone (issue 27,
    finding 12: `.wherry-work-XXXX` folders piled up there for ever)."""
    out = tmp_path / "out"
    argv = [sys.executable, "-m", "wherry.convert.cli", "convert", "--example", "-t", "desktop-x86_64", "-o",
            str(out), "--force", "-q"]
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out.is_dir() and any(p.name.startswith(".wherry-work-") for p in out.iterdir())):
        assert proc.poll() is None and time.monotonic() < deadline, "convert never made its work folder"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    left = [p for p in out.iterdir() if p.name.startswith(".wherry-work-")]
    assert len(left) == 1 and left[0].name.startswith(f".wherry-work-{publish._host()}-{proc.pid}-"), left
    live = out / f".wherry-work-{publish._host()}-{os.getpid()}-live01"   # a live conversion's: kept
    live.mkdir()
    old = time.time() - 2 * publish.STALE_S
    for folder in (*left, live):
        os.utime(folder, (old, old))
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True, timeout=300)
    assert [p.name for p in out.iterdir() if p.name.startswith(".wherry-work-")] == [live.name]
    assert (out / "digits_cnn.desktop-x86_64" / "manifest.json").is_file()
