"""The scripts ship inside the package and are found in a wheel, an editable install and a source tree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import mypkg
from mypkg.migrate.history import manifest, scripts
from mypkg.migrate.history.order import history_order
from tests.conftest import REPO, scratch
from tests.fast.test_fastpath import HEAVY_MODULES, NOT_AT_START, NOT_FOR_A_NO_OP, imported_by_fast_path
from tests.runtime.test_api import run_copy

HEAD = mypkg.heads()[0]
SHIPPED = sorted(p.name for p in (REPO / "alembic" / "versions").glob("*.py"))


@pytest.fixture(scope="module")
def wheel(mypkg_wheel: Path) -> Path:
    return mypkg_wheel


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh virtual environment, outside the repository, with only the wheel and its dependencies."""
    with scratch(tmp_path_factory, "venv") as root:
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=300)
        subprocess.run(
            [str(root / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
            check=True, capture_output=True, text=True, timeout=600,
        )
        yield root


def test_wheel_carries_models_env_and_every_revision(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "mypkg/models/__init__.py" in names
    for name in ("env.py", "script.py.mako", "README"):
        assert f"mypkg/migrations/{name}" in names
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("mypkg/migrations/versions/")) == SHIPPED
    # Nothing at the top level that could shadow the alembic library.
    assert not [n for n in names if n.startswith("alembic/")]
    # The revision manifest, built from the same scripts.
    built = zipfile.ZipFile(wheel).read("mypkg/migrations/manifest.json").decode()
    scanned = manifest.scan(REPO / "alembic" / "versions")
    assert built == manifest.to_json(scanned, history_order(manifest.Manifest(scanned, "scripts")))
    assert json.loads(built)["history_order"] == [rev.revision for rev in mypkg.history()]
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mypkg-migrate = mypkg.migrate.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_wheel_migrates_from_an_empty_directory(venv: Path, tmp_path: Path) -> None:
    command = str(venv / "bin" / "mypkg-migrate")
    env = {k: v for k, v in os.environ.items() if k not in ("MYPKG_DATABASE_URL", "PYTHONPATH")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([command, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result

    assert "applied" in run("upgrade").stdout
    assert HEAD in run("current").stdout
    assert "pending:  0" in run("status").stdout
    assert f"reverted {HEAD}" in run("downgrade", "-1").stdout
    assert f"applied  {HEAD}" in run("upgrade").stdout
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "from mypkg.migrate.history import manifest, scripts; print(scripts.script_location())"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()
    # Alembic's own importlib.resources lookup of "package:folder".
    assert where == "mypkg:migrations"
    # The installed package reads its built manifest, the same the source tree computes.
    source = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "from mypkg.migrate.history import manifest; m = manifest.load(); print(m.source, m.heads)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert source == f"manifest {(HEAD,)}"
    assert "every applied revision matches" in run("verify").stdout


def test_editable_install_uses_the_source_scripts() -> None:
    assert Path(scripts.script_location()) == REPO / "alembic"


def test_plain_source_tree_finds_its_scripts(source_copy: Path) -> None:
    result = run_copy(source_copy, "history")
    assert result.returncode == 0, result.stderr
    assert HEAD in result.stdout


@pytest.mark.parametrize("command", ["status", "current", "upgrade"])
def test_installed_fast_path_imports_nothing_it_does_not_need(venv: Path, tmp_path: Path, command: str) -> None:
    # As deployed: the built manifest is read by path, so not even shutil is imported.
    url = f"sqlite:///{tmp_path / 'app.db'}"
    mypkg.upgrade(url)
    env = {k: v for k, v in os.environ.items() if k not in ("MYPKG_DATABASE_URL", "PYTHONPATH")}
    python = str(venv / "bin" / "python")
    lean = NOT_FOR_A_NO_OP if command == "upgrade" else (*NOT_AT_START, "typing")
    assert imported_by_fast_path(python, url, command, (*HEAVY_MODULES, *lean, "shutil"), cwd=tmp_path, env=env) == []


def test_an_installed_script_edited_after_install_is_refused_and_reported(venv: Path, tmp_path: Path) -> None:
    """The manifest built with the package is the reference: a script edited in
    site-packages fails verify (exit 1, naming it) and is not run without --ignore-checksums;
    when it is, the ledger records the sha256 of the file that ran."""
    import hashlib
    import json

    command = str(venv / "bin" / "mypkg-migrate")
    env = {k: v for k, v in os.environ.items() if k not in ("MYPKG_DATABASE_URL", "PYTHONPATH")}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([command, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)

    assert run("upgrade", "head-1").returncode == 0
    (script,) = (venv / "lib").glob(f"python3*/site-packages/mypkg/migrations/versions/*_{HEAD}_*.py")
    original = script.read_bytes()
    try:
        # An edit whose sha256 sorts below the original's: "differs", not "is greater", is what flags it.
        edit = next(original + f"\n# edited on the server ({n})\n".encode() for n in range(1000)
                    if hashlib.sha256(original + f"\n# edited on the server ({n})\n".encode()).hexdigest()
                    < hashlib.sha256(original).hexdigest())
        script.write_bytes(edit)
        verify = run("verify")
        assert verify.returncode == 1
        assert f"{HEAD}  edited script: {script.name} was changed after the package was built" in verify.stdout
        refused = run("upgrade")
        assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
        assert f"{script.name} ({HEAD}) was changed after the package was built; nothing was run" in refused.stderr
        assert HEAD not in run("current").stdout
        forced = run("upgrade", "--ignore-checksums")
        assert forced.returncode == 0, forced.stderr
        rows = json.loads(run("history", "--applied", "--json").stdout)["rows"]
        assert rows[-1]["revision"] == HEAD
        assert rows[-1]["checksum"] == hashlib.sha256(script.read_bytes()).hexdigest() != hashlib.sha256(original).hexdigest()
    finally:
        script.write_bytes(original)
    assert run("verify").returncode == 1  # what ran here differs from what is shipped: a mismatch
    assert "mismatch" in run("verify").stdout
    # A script deleted from the install: a damaged install, named in one line (nothing runs
    # on a history Alembic would see shorter; tests/packaging/test_damaged_install.py).
    (other,) = (venv / "lib").glob(f"python3*/site-packages/mypkg/migrations/versions/*_{mypkg.history()[0].revision}_*.py")
    kept = other.read_bytes()
    try:
        other.unlink()
        told = run("verify")
        assert told.returncode == 1
        (line,) = told.stderr.strip().splitlines()
        assert "the install of mypkg is damaged" in line and other.name in line and "reinstall mypkg" in line
    finally:
        other.write_bytes(kept)


def test_an_authors_suite_gets_the_roundtrip_fixture_from_the_installed_package(venv: Path, tmp_path: Path) -> None:
    """No conftest, no import: the pytest11 entry point of the installed wheel brings the fixture."""
    pytest_range = next(r for r in tomllib.loads((REPO / "pyproject.toml").read_text())["dependency-groups"]["test"]
                        if r.startswith("pytest>"))
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", pytest_range],
                   check=True, capture_output=True, text=True, timeout=600)
    (tmp_path / "test_author.py").write_text(
        "def test_every_revision_keeps_its_rows(migration_roundtrip):\n"
        "    assert migration_roundtrip(rows=5) == []\n")
    done = subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "test_author.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "1 passed" in done.stdout, done.stdout[-3000:]
