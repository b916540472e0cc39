"""An install someone damaged (a script deleted from site-packages, a truncated manifest):
one line naming it and 'reinstall', nothing run, never a traceback or a wrong 'done'.

The install is laid out as the wheel lays it out (package, migrations/ with the scripts and
the manifest the build hook writes), without building a wheel: the packaging tests build one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mypkg
from mypkg.migrate.history import manifest, order
from tests.conftest import REPO

HEAD = mypkg.heads()[0]


@pytest.fixture
def install(tmp_path: Path) -> Path:
    return lay_out_install(tmp_path)


def lay_out_install(tmp_path: Path) -> Path:
    """site-packages as the wheel fills it: the package, migrations/ and its manifest."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "mypkg", site / "mypkg", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "alembic", site / "mypkg" / "migrations", ignore=shutil.ignore_patterns("__pycache__"))
    revisions = manifest.scan(REPO / "alembic" / "versions")
    shipped = manifest.Manifest(revisions, "scripts")
    (site / "mypkg" / "migrations" / manifest.FILENAME).write_text(
        manifest.to_json(revisions, order.history_order(shipped)))
    return site


def run(site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    env["PYTHONPATH"] = str(site)
    return subprocess.run([sys.executable, "-m", "mypkg", "--url", f"sqlite:///{cwd / 'app.db'}", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_the_laid_out_install_reads_its_manifest(install: Path, tmp_path: Path) -> None:
    found = run(install, tmp_path, "upgrade")
    assert found.returncode == 0, found.stderr
    code = "from mypkg.migrate.history import manifest; print(manifest.load().source)"
    env = {**os.environ, "PYTHONPATH": str(install)}
    shown = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert shown.stdout.strip() == "manifest"


@pytest.mark.parametrize("command", [("upgrade",), ("downgrade", "-1"), ("history",), ("verify",)])
def test_a_deleted_script_is_a_damaged_install_and_nothing_runs(
    install: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """Before: upgrade stopped one short of head and said 'upgraded'; downgrade said the
    database was migrated by a newer package; history hid the revision."""
    start = mypkg.history()[-2].revision if command == ("upgrade",) else HEAD
    assert run(install, tmp_path, "upgrade", start).returncode == 0
    (script,) = (install / "mypkg" / "migrations" / "versions").glob(f"*_{HEAD}_*.py")
    script.unlink()
    result = run(install, tmp_path, *command)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "the install of mypkg is damaged" in line and script.name in line and "reinstall mypkg" in line
    assert mypkg.current(f"sqlite:///{tmp_path / 'app.db'}") == (start,)


@pytest.mark.parametrize("command", [("status",), ("upgrade",), ("verify",)])
def test_a_corrupt_manifest_is_a_damaged_install(install: Path, tmp_path: Path, command: tuple[str, ...]) -> None:
    assert run(install, tmp_path, "upgrade", mypkg.history()[-2].revision).returncode == 0
    (install / "mypkg" / "migrations" / manifest.FILENAME).write_text('{"revisions": [')
    result = run(install, tmp_path, *command)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert f"migrations/{manifest.FILENAME} cannot be read" in line and "reinstall mypkg" in line
    assert mypkg.current(f"sqlite:///{tmp_path / 'app.db'}") == (mypkg.history()[-2].revision,)
