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


def imports_of(path: Path, *, typing_too: bool = False, external: bool = False) -> set[str]:
    """Our own modules ``path`` imports at run time (module level or inside functions); with
    ``typing_too`` also those under ``if TYPE_CHECKING:``; with ``external`` other packages'
    top-level names instead of ours."""
    module = module_name(path)
    ours = {module_name(p) for p in MODULES}
    found: set[str] = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree) if typing_too else _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, path, node)
            submodules = {f"{base}.{alias.name}" for alias in node.names} & ours
            # `from pkg import submodule` runs pkg/__init__ first, an implicit edge, as ever.
            found.update(submodules or {base})
    if external:
        return {name.split(".")[0] for name in found if name and name.split(".")[0] not in {"mypkg", "__future__"}}
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
    assert graph["mypkg.migrate.commands"] >= {"mypkg.migrate.runtime.runner", "mypkg.models"}
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
    from mypkg.migrate import identity
    from mypkg.migrate.database import locks

    assert (identity.COMMAND, identity.DATABASE_URL_VAR, identity.LEDGER_TABLE, identity.DEFAULT_URL) == (
        "mypkg-migrate", "MYPKG_DATABASE_URL", "mypkg_migration_ledger", "sqlite:///mypkg.db",
    )
    # The advisory lock key every earlier release took (written out in 0.1.0's locking.py).
    assert locks.ADVISORY_LOCK_KEY == int.from_bytes(hashlib.sha256(b"mypkg-migrate").digest()[:8], "big", signed=True)
    # A tenant's lock, as this release takes it: the next release must take the same one, or a
    # fleet of the old version and a fleet of the new would migrate one schema at once.
    assert locks.advisory_lock_key("tenant_a") == int.from_bytes(
        hashlib.sha256(b"mypkg-migrate:schema:tenant_a").digest()[:8], "big", signed=True)
    assert locks.advisory_lock_key(None) == locks.ADVISORY_LOCK_KEY


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


# --- the layers: imports only go down ------------------------------------------------------

MIGRATE = "mypkg.migrate"
# cli -> fleet -> commands -> review -> checks | observe -> runtime | fast -> data -> database -> history -> vocabulary
#: Bottom first. The shared vocabulary is everything at the top of ``mypkg.migrate`` but the API.
LAYER_RANKS = {"vocabulary": 0, "history": 1, "database": 2, "data": 2.5, "runtime": 3, "fast": 3, "checks": 4,
               "observe": 4, "review": 4.5,
               "commands": 5, "fleet": 6, "cli": 7}
#: Beside each other: neither imports the other.
SIBLINGS = {frozenset({"runtime", "fast"}), frozenset({"checks", "observe"})}
#: The schema an author edits; the machinery may read it, it reads only the vocabulary back.
SCHEMA = ("mypkg.models", "mypkg.naming", "mypkg.releases")
MAX_MODULES_PER_FOLDER = 12


def layer_of(module: str) -> str | None:
    """The layer of a module of ``mypkg.migrate``; None for modules outside it."""
    if module != MIGRATE and not module.startswith(MIGRATE + "."):
        return None
    rest = module.removeprefix(MIGRATE).lstrip(".").split(".")[0]
    if rest in LAYER_RANKS:
        return rest
    return "vocabulary"


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import that goes up the layers, or between siblings."""
    found = []
    for module, imported in sorted(graph.items()):
        here = layer_of(module)
        for target in sorted(imported):
            there = layer_of(target)
            if here is None or there is None:
                continue
            if LAYER_RANKS[there] > LAYER_RANKS[here] or frozenset({here, there}) in SIBLINGS:
                found.append(f"{module} ({here}) imports {target} ({there})")
    return found


def test_imports_only_go_down_the_layers() -> None:
    """Type-only imports count: a signature that names an upper layer's type is a tie too."""
    graph = {module_name(path): imports_of(path, typing_too=True) for path in MODULES}
    assert {layer_of(m) for m in graph} - {None} == set(LAYER_RANKS)  # every layer is populated
    assert upward_imports(graph) == []


def test_the_layer_check_finds_an_upward_import_and_a_sibling_tie() -> None:
    """What the ties before the move looked like: the run loop calling the baseline check,
    a data migration drawing with the fast path's constant."""
    graph = {
        "mypkg.migrate.runtime.runner": {"mypkg.migrate.checks.baseline", "mypkg.migrate.database.locks"},
        "mypkg.migrate.runtime.backfill": {"mypkg.migrate.fast.answers", "mypkg.migrate.results"},
        "mypkg.migrate.cli.handlers": {"mypkg.migrate.commands"},
    }
    assert upward_imports(graph) == [
        "mypkg.migrate.runtime.backfill (runtime) imports mypkg.migrate.fast.answers (fast)",
        "mypkg.migrate.runtime.runner (runtime) imports mypkg.migrate.checks.baseline (checks)",
    ]


def test_the_schema_reads_only_the_shared_vocabulary_of_the_machinery() -> None:
    for path in MODULES:
        module = module_name(path)
        if module.startswith(SCHEMA):
            reached = {layer_of(m) for m in imports_of(path, typing_too=True)} - {None}
            assert reached <= {"vocabulary"}, module


def _closure(start: str, graph: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen


def _module_level_imports(path: Path) -> set[str]:
    """Top-level names of what ``path`` imports when it is imported (not in functions, not
    for type checking)."""
    found: set[str] = set()
    stack = list(ast.parse(path.read_text()).body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
        elif isinstance(node, ast.If) and not _is_type_checking(node):
            stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend(node.body + node.orelse + node.finalbody + [n for h in node.handlers for n in h.body])
    return found


def test_the_fast_path_never_imports_sqlalchemy_or_alembic() -> None:
    """Statically: the fast path's own modules never (not even in a function), and nothing
    they reach at import time (tests/fast/test_fastpath.py checks the runs themselves)."""
    graph = {module_name(path): imports_of(path) for path in MODULES}
    by_name = {module_name(path): path for path in MODULES}
    fast = {m for m in by_name if layer_of(m) == "fast"}
    reached = set().union(*(_closure(m, graph) for m in fast))
    assert {layer_of(m) for m in reached} <= {"fast", "database", "history", "vocabulary"}
    assert "mypkg.migrate.history.manifest" in reached  # the walk does go below the layer
    heavy = {"sqlalchemy", "alembic"}
    assert {m: imports_of(by_name[m], external=True) & heavy for m in fast} == {m: set() for m in fast}
    loaded = {m: _module_level_imports(by_name[m]) & heavy for m in sorted(reached)}
    assert {m: found for m, found in loaded.items() if found} == {}


@pytest.mark.parametrize("folder", sorted({p.parent for p in MODULES}), ids=lambda p: str(p.relative_to(REPO)))
def test_no_folder_holds_more_than_about_twelve_modules(folder: Path) -> None:
    modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
    assert len(modules) <= MAX_MODULES_PER_FOLDER


@pytest.mark.parametrize("folder", sorted({p.parent for p in MODULES if p.parent != PACKAGE}),
                         ids=lambda p: str(p.relative_to(REPO)))
def test_every_folder_says_what_lives_there(folder: Path) -> None:
    docstring = ast.get_docstring(ast.parse((folder / "__init__.py").read_text()))
    assert docstring and len(docstring.splitlines()) >= 2


def test_the_mutation_configuration_names_modules_and_tests_that_exist() -> None:
    """benchmarks/mutation.py follows the layout: every module and test it names is there."""
    import shlex
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypkg"]["mutation"]["modules"]
    assert config, "no module configured"
    missing = []
    for name, entry in config.items():
        if not (REPO / entry["module"]).is_file():
            missing.append(entry["module"])
        words = shlex.split(entry["tests"])
        paths = [w for i, w in enumerate(words) if w.startswith("tests") and (i == 0 or words[i - 1] != "-k")]
        for path in paths:
            file, _, test = path.partition("::")
            test = test.rpartition("::")[2].partition("[")[0]  # Class::test_name[param]: the test's own name
            if (REPO / file).is_dir() and not test:  # a folder of tests
                continue
            text = (REPO / file).read_text() if (REPO / file).is_file() else None
            if text is None or (test and f"def {test}(" not in text and f"class {test}:" not in text):
                missing.append(f"{name}: {path}")
    assert missing == []


def test_the_package_folder_is_found_whatever_depth_the_asking_module_sits_at() -> None:
    """The bundled manifest and the release map are found from PACKAGE_DIR, not from
    ``__file__`` of a module a folder move could put one level deeper."""
    import mypkg
    from mypkg.migrate.identity import PACKAGE_DIR

    assert Path(PACKAGE_DIR) == Path(mypkg.__file__).resolve().parent
    offenders = [str(p.relative_to(REPO)) for p in MODULES if p != IDENTITY and "__file__" in p.read_text()]
    assert offenders == []


def test_a_fresh_history_leaves_no_revision_of_this_project(tmp_path: Path) -> None:
    """What an adoption needed by hand: the release map, the accepted lint findings and the
    --help examples named this project's revisions after the rename."""
    root = _copy_project(tmp_path / "acme-src")
    done = subprocess.run([sys.executable, "tools/rename_package.py", "acme", "--fresh-history"], cwd=root,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert list((root / "alembic" / "versions").rglob("*.py")) == []
    releases = (root / "acme" / "releases.py").read_text()
    assert "RELEASES: dict[str, str] = {}" in releases
    lint = (root / "alembic" / "lint.toml").read_text()
    assert "[[ignore]]" not in lint and "disable" in lint
    shipped = {line.split("Revision ID: ")[1].strip() for path in (REPO / "alembic" / "versions").glob("*.py")
               for line in path.read_text().splitlines() if line.startswith("Revision ID: ")}
    assert len(shipped) >= 6
    left = [str(path.relative_to(root)) for folder in ("acme", "alembic") for path in (root / folder).rglob("*")
            if path.is_file() and any(rev in path.read_text(errors="ignore") for rev in shipped)]
    assert left == []
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG")}
    env["PYTHONPATH"] = str(root)
    for command in ("upgrade", "downgrade", "lint", "repair", "stamp"):
        shown = subprocess.run([sys.executable, "-m", "acme", command, "--help"], cwd=root, env=env,
                               capture_output=True, text=True, timeout=60)
        assert shown.returncode == 0, shown.stderr
        assert not [rev for rev in shipped if rev in shown.stdout], (command, shown.stdout)
