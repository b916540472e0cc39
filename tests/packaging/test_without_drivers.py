"""A venv with only the declared runtime dependencies, no database driver: offline SQL and
lint need none (Alembic renders with the dialect alone); a command that connects names the
extra to install, in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, scratch

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    with scratch(tmp_path_factory, "bare-venv") as venv:
        yield _bare_venv(venv)


def _bare_venv(venv: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(REPO)],
                   check=True, capture_output=True, text=True, timeout=900)
    found = subprocess.run([str(venv / "bin" / "python"), "-c", "import psycopg"], capture_output=True, text=True)
    assert found.returncode != 0, "psycopg is installed: this world is not the one claimed"
    found = subprocess.run([str(venv / "bin" / "python"), "-c", "import pymysql"], capture_output=True, text=True)
    assert found.returncode != 0, "PyMySQL is installed: this world is not the one claimed"
    return venv


def run(venv: Path, cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MYPKG_", "OTEL_")) and k != "PYTHONPATH"}
    env.update(extra)
    return subprocess.run([str(venv / "bin" / "mypkg-migrate"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("url", ["postgresql://app@127.0.0.1:1/app", "mysql+pymysql://app@127.0.0.1:1/app"])
def test_offline_sql_renders_without_the_driver(bare: Path, tmp_path: Path, url: str) -> None:
    up = run(bare, tmp_path, "--url", url, "upgrade", "--sql")
    assert up.returncode == 0, up.stderr
    assert "CREATE TABLE my_table" in up.stdout
    down = run(bare, tmp_path, "--url", url, "downgrade", "--sql", "head:base")
    assert down.returncode == 0 and "DROP TABLE my_table" in down.stdout, down.stderr


def test_lint_runs_without_the_driver(bare: Path, tmp_path: Path) -> None:
    result = run(bare, tmp_path, "lint", "--dialect", "postgresql")
    assert result.returncode in (0, 1), result.stderr
    assert "not installed: pip install 'psycopg[binary]'" not in result.stderr
    assert "squawk is not installed" in result.stderr  # the bare venv has no squawk either: said once


def test_a_command_that_connects_names_the_extra(bare: Path, tmp_path: Path) -> None:
    result = run(bare, tmp_path, "--url", "postgresql://app@127.0.0.1:1/app", "status")
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "pip install 'psycopg[binary]' (the postgresql extra), or conda install -c conda-forge psycopg" in line
    assert "mypkg[" not in line  # on PyPI that name is another project


def test_otel_variables_without_the_extra_still_migrate_and_say_what_to_install(bare: Path, tmp_path: Path) -> None:
    found = subprocess.run([str(bare / "bin" / "python"), "-c", "import opentelemetry"], capture_output=True)
    assert found.returncode != 0, "OpenTelemetry is installed: this world is not the one claimed"
    done = run(bare, tmp_path, "upgrade", OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:1")
    assert done.returncode == 0 and "upgraded from base" in done.stdout, done.stderr
    assert done.stderr == ("mypkg-migrate: OTEL_* variables are set but OpenTelemetry is not installed: "
                           "no traces or metrics; pip install opentelemetry-sdk opentelemetry-exporter-otlp-proto-http\n")
    assert run(bare, tmp_path, "status", "-q", OTEL_SERVICE_NAME="x").stderr == ""  # -q: errors only
