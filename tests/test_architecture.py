"""The machinery's rooms: no import cycle, no private helper shared, names from one place,
and a rename to another package name that is mechanical and leaves no trace."""

from __future__ import annotations

import ast
import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGE = REPO / "mypkg"
MODULES = sorted(PACKAGE.rglob("*.py"))
#: The one module allowed to spell the package's name in code.
IDENTITY = PACKAGE / "migrate" / "identity.py"
MAX_LINES = 400


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _runtime_nodes(tree: ast.AST):  # noqa: ANN202
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                stack.extend(child.orelse)
                continue
            stack.append(child)


def _absolute(module: str, path: Path, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(path: Path) -> set[str]:
    """Our own modules ``path`` imports at run time (module level or inside functions)."""
    module = module_name(path)
    ours = {module_name(p) for p in MODULES}
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, path, node)
            submodules = {f"{base}.{alias.name}" for alias in node.names} & ours
            # `from pkg import submodule` runs pkg/__init__ first, an implicit edge, as ever.
            found.update(submodules or {base})
    return {name for name in found if name in ours and name != module}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every back edge of a depth-first walk, as the cycle it closes."""
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target):], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_no_import_cycle_among_the_package_modules() -> None:
    graph = {module_name(path): imports_of(path) for path in MODULES}
    assert graph["mypkg.migrate.commands"] >= {"mypkg.migrate.runner", "mypkg.models"}
    assert find_cycles(graph) == []


def test_the_cycle_finder_finds_the_cycle_earlier_releases_had() -> None:
    """api imported baseline, which imported api's helpers back."""
    graph = {"mypkg.api": {"mypkg.baseline", "mypkg.ledger"}, "mypkg.baseline": {"mypkg.api"}, "mypkg.ledger": set()}
    assert find_cycles(graph) == [["mypkg.api", "mypkg.baseline", "mypkg.api"]]


def test_no_private_helper_is_used_from_another_module() -> None:
    ours = {module_name(p) for p in MODULES}
    offences = []
    for path in MODULES:
        module = module_name(path)
        tree = ast.parse(path.read_text())
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _absolute(module, path, node)
                for alias in node.names:
                    if f"{base}.{alias.name}" in ours:
                        aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
                    elif base in ours and alias.name.startswith("_") and not alias.name.startswith("__"):
                        offences.append(f"{module} imports {base}.{alias.name}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                offences.append(f"{module} uses {aliases[node.value.id]}.{node.attr}")
    assert offences == []


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_is_small_enough_to_read_in_one_sitting(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES


def _code_strings(tree: ast.AST) -> list[str]:
    """String constants that are not docstrings."""
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_the_package_name_is_spelled_in_code_only_by_the_identity_module() -> None:
    spelled = {
        str(path.relative_to(REPO)): [s for s in _code_strings(ast.parse(path.read_text())) if "mypkg" in s.lower()]
        for path in MODULES
        if path != IDENTITY
    }
    assert {where: found for where, found in spelled.items() if found} == {}


def test_identity_keeps_the_names_databases_already_carry() -> None:
    from mypkg.migrate import identity, locks

    assert (identity.COMMAND, identity.DATABASE_URL_VAR, identity.LEDGER_TABLE, identity.DEFAULT_URL) == (
        "mypkg-migrate", "MYPKG_DATABASE_URL", "mypkg_migration_ledger", "sqlite:///mypkg.db",
    )
    # The advisory lock key every earlier release took (written out in 0.1.0's locking.py).
    assert locks.ADVISORY_LOCK_KEY == int.from_bytes(hashlib.sha256(b"mypkg-migrate").digest()[:8], "big", signed=True)


def _copy_project(destination: Path) -> Path:
    ignore = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.pyc", "*.db", "build", "dist", "output", ".pytest_cache")
    shutil.copytree(REPO, destination, ignore=ignore)
    return destination


@pytest.mark.slow
def test_renamed_copy_builds_installs_and_migrates_without_a_trace_of_the_old_name(tmp_path: Path) -> None:
    root = _copy_project(tmp_path / "acmedb-src")
    renamed = subprocess.run(
        [sys.executable, "tools/rename_package.py", "acmedb"], cwd=root, capture_output=True, text=True, timeout=60
    )
    assert renamed.returncode == 0, renamed.stderr
    assert not (root / "mypkg").exists() and (root / "acmedb" / "migrate" / "identity.py").is_file()
    out = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(root)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (wheel,) = out.glob("acmedb-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    work = tmp_path / "work"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG") and k != "PYTHONPATH"}
    command = str(venv / "bin" / "acmedb-migrate")
    outputs = []
    for args in (["upgrade"], ["status"], ["history", "--applied"], ["downgrade", "-1"], ["upgrade"], ["verify"]):
        result = subprocess.run([command, *args], cwd=work, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (args, result.stderr)
        outputs.append(result.stdout + result.stderr)
    assert not (venv / "bin" / "mypkg-migrate").exists()
    assert "acmedb" in outputs[0]  # the default database acmedb.db is named
    assert all("mypkg" not in text.lower() for text in outputs), outputs
    database = work / "acmedb.db"
    dump = "\n".join(sqlite3.connect(database).iterdump())
    assert "acmedb_migration_ledger" in dump
    assert "mypkg" not in dump.lower()
    assert sorted(p.name for p in work.iterdir()) == ["acmedb.db", "acmedb.db.acmedb-migrate.lock"]
