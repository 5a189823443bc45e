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
    edge = support_matrix.summarize_edge(support_matrix.marked(REPO / "docs" / "matrix.md", support_matrix.EDGE_BLOCK))
    assert support_matrix.marked(REPO / "README.md", support_matrix.EDGE_SUMMARY).strip() == edge.strip()
    assert "| simulated pass (not the NPU) |" in edge


def _design_table():
    spec = importlib.util.spec_from_file_location("design_table", REPO / "scripts" / "design_table.py")
    design_table = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(design_table)
    return design_table


def test_the_design_tables_are_true_to_the_code():
    """docs/DESIGN.md has one table per package with a row per module, and each row's import column is what
    the module imports (scripts/design_table.py --write rewrites that column after a change)."""
    design_table = _design_table()
    assert design_table.differences((REPO / "docs" / "DESIGN.md").read_text()) == []


def test_the_design_tables_notice_a_new_import_and_a_missing_module():
    design_table = _design_table()
    text = (REPO / "docs" / "DESIGN.md").read_text()
    row = next(line for line in text.splitlines() if line.endswith("| standard library only |"))
    changed = design_table.differences(text.replace(row, row.replace("standard library only", "`numpy`")))
    assert len(changed) == 1 and changed[0].endswith(": imports standard library only (the table says `numpy`)"), changed
    missing = design_table.differences(text.replace(row + "\n", ""))
    assert len(missing) == 1 and missing[0].endswith(": no row"), missing


def test_the_layers_point_one_way():
    """What the tables say about the layers, read from the code: runtimes imports neither convert nor targets
    (nor paddle outside its Paddle backend), targets never imports convert."""
    design_table = _design_table()
    for package, modules in design_table.packages().items():
        for module in modules:
            names = {name for name, _ in design_table.imports_of(module)}
            if package.startswith("runtimes"):
                assert not {n for n in names if n.split(".")[0] in ("convert", "targets")}, module
                if module.name != "paddle_backend.py":
                    assert "paddle" not in names, module
            if package.startswith("targets"):
                assert not {n for n in names if n.split(".")[0] == "convert"}, module
