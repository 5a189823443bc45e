"""The documentation site (mkdocs.yml over docs/) as CI builds it: `mkdocs build --strict` passes on the
checkout and fails on a broken link; the README's support-matrix summary is the one counted from
docs/matrix.md (scripts/support_matrix.py writes both)."""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys

import pytest
from support.paths import REPO

pytest.importorskip("mkdocs", reason="mkdocs is not installed: pip install '.[docs]' (scripts/setup.sh does)")


def _build(root, site):
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(root / "mkdocs.yml"),
                           "-d", str(site)], capture_output=True, text=True, timeout=300)


def test_the_site_builds_strict_and_every_page_is_in_it(tmp_path):
    proc = _build(REPO, tmp_path / "site")
    assert proc.returncode == 0, proc.stderr[-3000:]
    for page in (REPO / "docs").glob("*.md"):
        built = tmp_path / "site" / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert built.is_file(), f"{page.name} is not in the site"


def test_a_broken_link_fails_the_build(tmp_path):
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    guide = tmp_path / "docs" / "guide.md"
    guide.write_text(guide.read_text() + "\nSee [the old page](no-such-page.md).\n")
    proc = _build(tmp_path, tmp_path / "site")
    assert proc.returncode != 0 and "no-such-page.md" in proc.stderr, proc.stderr[-3000:]


def test_the_readme_matrix_summary_is_counted_from_the_full_matrix():
    spec = importlib.util.spec_from_file_location("support_matrix", REPO / "scripts" / "support_matrix.py")
    support_matrix = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(support_matrix)
    summary = support_matrix.summarize(support_matrix.table_of(REPO / "docs" / "matrix.md"))
    assert support_matrix.table_of(REPO / "README.md").strip() == summary.strip()
    assert "| pass |" in summary

