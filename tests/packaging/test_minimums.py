"""The declared minimums are true: a venv holding exactly the lowest version each
requirement admits (runtime, the postgresql/mysql/lint/otel extras, the build backend) builds
the wheel and passes the core tests: SQLite, PostgreSQL, MariaDB, the fast path's libpq,
OpenTelemetry's spans and metrics; then, with alembic raised to the authors' floor (the test
group's), the authors' alembic workflow and its post-write hook.

Found this way (pyproject.toml says why at each floor): alembic 1.12.0 (1.11.0 fails the
runner), SQLAlchemy 2.0.0, filelock 3.13.0, psycopg 3.1.20, PyMySQL 1.1.0, squawk-cli 2.0.0,
hatchling 1.26.3; opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http 1.20.0
(passing; older not tried); for authors, alembic 1.16.3.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
#: The core tests run against the floors: every layer, every database, both commands.
CORE = [
    "tests/runtime/test_api.py",
    "tests/fast/test_libpq.py",
    "tests/runtime/test_mysql.py::test_life_cycle",
    "tests/cli/test_url_forms.py",  # URLs as SQLAlchemy's oldest admitted parser reads them
    # The otel extra's floors: the SDK in a program, the OTLP/HTTP exporter to a receiver.
    "tests/observe/test_otel.py::test_a_program_with_opentelemetry_gets_a_span_per_revision_and_the_metrics",
    "tests/observe/test_otel.py::test_the_command_exports_to_a_collector_and_joins_the_pipelines_trace",
]
#: The authors' side (`alembic revision`, its post-write hook), on the test group's alembic floor.
AUTHORS = [
    "tests/history/test_alembic_workflow.py",
    "tests/checks/test_lint.py::test_alembic_revision_runs_lint_on_the_new_script",
]


def authors_alembic() -> str:
    """The authors' alembic floor: the test group's (environment.yml holds the same)."""
    found = next(r for r in PYPROJECT["dependency-groups"]["test"] if r.startswith("alembic>"))
    return re.match(r"alembic>=([^,\s]+)", found).group(1)  # type: ignore[union-attr]


def floors() -> dict[str, str]:
    """Every declared requirement pinned to its lowest admitted version."""
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    requirements = [*project["dependencies"], *extras["postgresql"], *extras["mysql"], *extras["lint"],
                    *extras["otel"], *PYPROJECT["build-system"]["requires"]]
    pinned = {}
    for requirement in requirements:
        found = re.match(r"^([A-Za-z0-9_.-]+(?:\[[^\]]*\])?)\s*>=\s*([^,\s]+)", requirement)
        assert found, f"no floor declared: {requirement}"
        pinned[found.group(1)] = found.group(2)
    return pinned


def test_every_requirement_declares_a_floor() -> None:
    assert {name.split("[")[0].lower() for name in floors()} == {
        "alembic", "sqlalchemy", "filelock", "psycopg", "pymysql", "squawk-cli", "hatchling",
        "opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"}


def test_the_lowest_declared_versions_build_and_pass_the_core_tests(tmp_path: Path) -> None:
    venv = tmp_path / "floors"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")

    def pip(*args: str) -> None:
        done = subprocess.run([python, "-m", "pip", "--quiet", *args], capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]

    pinned = [f"{name}=={version}" for name, version in floors().items()]
    pytest_range = next(r for r in PYPROJECT["dependency-groups"]["test"] if r.startswith("pytest>"))
    pip("install", *pinned, pytest_range)
    pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(tmp_path / "wheel"), str(REPO))
    assert list((tmp_path / "wheel").glob("mypkg-*.whl")), "the floor hatchling built no wheel"
    # The wheel the floors built (the source tree, first on sys.path, is the same code).
    pip("install", "--no-deps", *map(str, (tmp_path / "wheel").glob("mypkg-*.whl")))
    listed = subprocess.run([python, "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True).stdout
    for name, version in floors().items():  # the world is the one claimed: nothing resolved higher
        assert f"{name.split('[')[0].lower()}=={version}" in listed.lower(), (name, listed)

    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_") and k != "PYTHONPATH"}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # alembic, squawk: the floors'
    # pytest-alembic is not a runtime requirement: its ini option is unknown there; nor is
    # pytest-xdist, whose options the suite's addopts name.

    def core_tests(*tests: str) -> None:
        result = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W",
                                 "ignore::pytest.PytestConfigWarning", "-o", "addopts=--strict-markers", *tests],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
        assert result.returncode == 0, result.stdout[-5000:]
        assert re.search(r"\d+ passed", result.stdout) and " failed" not in result.stdout

    core_tests(*CORE)
    # The authors' environment: alembic at its own floor, the rest unchanged.
    pip("install", "--no-deps", f"alembic=={authors_alembic()}")
    core_tests(*AUTHORS)


def test_the_authors_floor_is_above_the_runtime_floor() -> None:
    """The runtime admits older alembic (applications pinned below the authors' need) than
    the authoring workflow, never the other way round."""
    def key(version: str) -> tuple[int, ...]:
        return tuple(int(part) for part in version.split("."))

    assert key(floors()["alembic"]) < key(authors_alembic())
