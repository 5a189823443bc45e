"""The import column of docs/DESIGN.md's module tables, read from the code.

    .venv/bin/python scripts/design_table.py          # list what differs from the tables (exit 1 if anything)
    .venv/bin/python scripts/design_table.py --write  # rewrite the import cells; job cells are kept

Each package of convert/, runtimes/ and targets/ has one table in docs/DESIGN.md under a heading
`### package/` with rows `| module | its one job | what it imports |`. The import cell lists the wherry
modules the module imports (as `package.module`, `runtimes` for the package itself) and the libraries
outside the standard library, each marked "(lazy)" when it is imported only inside a function; the
standard library is always allowed and not listed. tests/e2e/test_docs_site.py holds the tables to the code.
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path
from typing import Dict, List, Set, Tuple

REPO = Path(__file__).resolve().parent.parent
DESIGN = REPO / "docs" / "DESIGN.md"
TOPS = ("convert", "runtimes", "targets")
ROW = re.compile(r"^\| `([^`]+)` \| (.*) \| (.*) \|$")


def packages() -> Dict[str, List[Path]]:
    """package folder (e.g. 'convert/pir') -> its modules, for every folder with an __init__.py."""
    found = {}
    for top in TOPS:
        for init in sorted((REPO / top).rglob("__init__.py")):
            folder = init.parent
            if any(part.startswith((".", "build")) or part.endswith(".egg-info") for part in folder.parts):
                continue
            found[folder.relative_to(REPO).as_posix()] = sorted(folder.glob("*.py"))
    return found


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(dotted: str) -> str:
    """The longest prefix of a dotted name that is a module or package of the checkout."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        base = REPO.joinpath(*parts[:n])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return ".".join(parts[:n])
    return dotted


def _stdlib(name: str) -> bool:
    # tomllib: the standard library's from 3.11 (tomli before), whichever Python reads the code; _typeshed:
    # the standard library's own types (e.g. WriteableBuffer), which exist for type checkers only
    return name in sys.stdlib_module_names or name in ("__future__", "tomllib", "_typeshed")


def imports_of(path: Path) -> Set[Tuple[str, bool]]:
    """(name, lazy) for each wherry module and outside library the file imports."""
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: Dict[str, bool] = {}

    def add(name: str, lazy: bool) -> None:
        if name and name != me:
            found[name] = found.get(name, True) and lazy

    def visit(node, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    top = alias.name.split(".")[0]
                    if alias.name.startswith("wherry."):
                        add(_resolve(alias.name[len("wherry."):]), inner)
                    elif not _stdlib(top):
                        add(top, inner)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")
                    base = base[:len(base) - (child.level - 1)]
                    stem = ".".join(base + ([child.module] if child.module else []))
                elif child.module and (child.module == "wherry" or child.module.startswith("wherry.")):
                    stem = child.module[len("wherry."):] if child.module != "wherry" else ""
                else:
                    top = (child.module or "").split(".")[0]
                    if not _stdlib(top):
                        add(top, inner)
                    continue
                for alias in child.names:   # `from .x import y`: the module x.y if there is one, else x
                    add(_resolve(f"{stem}.{alias.name}" if stem else alias.name), inner)
            visit(child, inner)

    visit(ast.parse(path.read_text()), False)
    # TYPE_CHECKING-only imports are not dependencies at run time; they are listed like the rest
    return set(found.items())


def cell(path: Path) -> str:
    names = sorted(imports_of(path), key=lambda item: (item[0].split(".")[0] not in TOPS, item[0]))
    return ", ".join(f"`{name}`" + (" (lazy)" if lazy else "") for name, lazy in names) or "standard library only"


def tables(text: str) -> Dict[str, Dict[str, Tuple[str, str]]]:
    """'### convert/pir/' heading -> {module file: (job, imports)} from the design page."""
    out: Dict[str, Dict[str, Tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        heading = re.match(r"^### `?([a-z_/]+)/`?", line)
        if heading:
            current = heading.group(1)
            out.setdefault(current, {})
            continue
        row = ROW.match(line)
        if current and row and row.group(1).endswith(".py"):
            out[current][row.group(1)] = (row.group(2), row.group(3))
    return out


def differences(text: str) -> List[str]:
    documented = tables(text)
    problems = []
    for package, modules in packages().items():
        rows = documented.get(package)
        if rows is None:
            problems.append(f"no table `### {package}/`")
            continue
        for module in modules:
            if module.name not in rows:
                problems.append(f"{package}/{module.name}: no row")
            elif rows[module.name][1] != cell(module):
                problems.append(f"{package}/{module.name}: imports {cell(module)} (the table says {rows[module.name][1]})")
            elif not rows[module.name][0].strip():
                problems.append(f"{package}/{module.name}: no job")
        for name in set(rows) - {m.name for m in modules}:
            problems.append(f"{package}/{name}: in the table but not in the code")
    return problems


def write(text: str) -> str:
    current = None
    lines = []
    for line in text.splitlines():
        heading = re.match(r"^### `?([a-z_/]+)/`?", line)
        if heading:
            current = heading.group(1)
        row = ROW.match(line)
        if current and row and (REPO / current / row.group(1)).is_file() and row.group(1).endswith(".py"):
            line = f"| `{row.group(1)}` | {row.group(2)} | {cell(REPO / current / row.group(1))} |"
        lines.append(line)
    return "\n".join(lines) + "\n"


def main(argv) -> int:
    text = DESIGN.read_text()
    if "--write" in argv:
        DESIGN.write_text(write(text))
        text = DESIGN.read_text()
    problems = differences(text)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
