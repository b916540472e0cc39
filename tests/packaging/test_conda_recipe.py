"""The conda recipe: rendered, consistent, built, inspected and tested with real conda tooling.

What runs here, offline (no conda channel is reachable on this machine):

1. rattler-build renders ``recipe/recipe.yaml`` (the engine ``conda-build recipe/``
   hands v1 recipes to);
2. name, version, dependencies and the entry point agree across the recipe,
   ``pyproject.toml`` and ``environment.yml``;
3. the UNMODIFIED recipe is built by rattler-build against a local channel
   (``tests/packaging/conda_bootstrap.py``). The one offline difference, explicit: that channel
   holds this machine's CPython and PyPI wheels repackaged as conda packages, standing
   in for conda-forge's python, pip, hatchling, alembic, sqlalchemy, ...;
4. the ``.conda`` artifact is opened and inspected;
5. the recipe's own tests (imports, pip check, the command, a SQLite migration to head
   and back) run through rattler-build against the artifact, in a fresh environment;
6. py-rattler installs the artifact into a fresh prefix, where ``mypkg-migrate``
   migrates a temporary SQLite database outside the source tree.

What only a machine that reaches conda-forge proves (``.github/workflows/conda.yml``):
``conda-build recipe/`` with conda-forge's packages, and ``conda env create -f
environment.yml`` followed by the test suite.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, scratch
from tests.packaging.conda_bootstrap import bootstrap_channel

pytestmark = pytest.mark.slow

RECIPE = REPO / "recipe" / "recipe.yaml"
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
ENVIRONMENT = yaml.safe_load((REPO / "environment.yml").read_text())
REVISIONS = sorted(p.name for p in (REPO / "alembic" / "versions").glob("*.py"))


def spec(requirement: str) -> tuple[str, str]:
    """``"psycopg[binary] >=3.1, <4"`` -> ``("psycopg", ">=3.1,<4")``: a name and a range."""
    found = re.match(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*(.*)$", requirement)
    assert found, requirement
    return found.group(1).lower().replace("_", "-"), found.group(2).replace(" ", "")


@pytest.fixture(scope="module")
def rendered() -> dict:
    from rattler_build import Stage0Recipe

    variants = Stage0Recipe.from_file(RECIPE).render()
    assert len(variants) == 1, "one noarch package, one variant"
    return variants[0].recipe.to_dict()


# 1. rendering ---------------------------------------------------------------------


def test_recipe_renders_as_noarch_python_with_its_tests(rendered: dict) -> None:
    assert rendered["package"]["name"] == "mypkg"
    assert rendered["build"]["noarch"] == "python"
    assert rendered["build"]["script"] == "${{ PYTHON }} -m pip install . -vv --no-deps --no-build-isolation"
    assert rendered["source"] == [{"path": ".."}]
    assert rendered["about"]["license"] == "MIT" and rendered["about"]["license_file"] == ["LICENSE"]
    assert rendered["about"]["homepage"] == PYPROJECT["project"]["urls"]["Homepage"]
    assert rendered["schema_version"] == 1
    python_test, script_test = rendered["tests"]
    assert set(python_test["python"]["imports"]) >= {"mypkg", "mypkg.migrate.cli"}
    assert python_test["python"].get("pip_check", True) is True
    # conda-forge's pure-Python template: the lowest Python and the newest.
    assert python_test["python"]["python_version"] == [f"{rendered['context']['python_min']}.*", "*"]
    # A Python script, which runs the same under cmd.exe (Windows) and sh.
    assert script_test["script"]["interpreter"] == "python"
    commands = script_test["script"]["content"]
    compile(commands, "recipe test", "exec")
    assert 'run("--help")' in commands and 'shutil.which("mypkg-migrate")' in commands
    assert '["upgrade"]' in commands and '["downgrade", "base", "--yes"]' in commands
    assert "$(" not in commands and "cd " not in commands  # nothing POSIX-shell only


# 2. consistency --------------------------------------------------------------------


def test_version_is_written_once_and_read_everywhere(rendered: dict) -> None:
    from importlib.metadata import version

    assert "version" not in PYPROJECT["project"], "pyproject.toml reads it from the recipe"
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "recipe/recipe.yaml"
    assert rendered["package"]["version"] == version("mypkg")
    assert RECIPE.read_text().count(rendered["package"]["version"]) == 1


def test_dependencies_agree_across_recipe_pyproject_and_environment(rendered: dict) -> None:
    project = PYPROJECT["project"]
    requirements = rendered["requirements"]
    python_min = rendered["context"]["python_min"]

    run = dict(spec(r) for r in requirements["run"])
    assert run.pop("python") == f">={python_min}"
    assert project["requires-python"] == f">={python_min}"
    assert run == dict(spec(r) for r in project["dependencies"])

    # PostgreSQL, MySQL, OpenTelemetry: optional extras for pip, optional run constraints for conda.
    extras = project["optional-dependencies"]
    assert dict(spec(r) for r in requirements["run_constraints"]) == {
        **dict(spec(r) for r in extras["postgresql"]), **dict(spec(r) for r in extras["mysql"]),
        **dict(spec(r) for r in extras["otel"]),
    }
    host = dict(spec(r) for r in requirements["host"])
    assert host["python"] == f"{python_min}.*"
    assert dict(spec(r) for r in PYPROJECT["build-system"]["requires"]).items() <= host.items()

    env_specs = [d for d in ENVIRONMENT["dependencies"] if isinstance(d, str)]
    env = dict(spec(d.replace("=", " ", 1) if re.match(r"^[\w-]+=\d", d) else d) for d in env_specs)
    assert env.pop("python") == python_min
    # The suite's tools: a dependency group (PEP 735), never an extra in the published
    # metadata; environment.yml carries every one, so `conda env create` then pytest works.
    assert "test" not in project.get("optional-dependencies", {})
    test_group = dict(spec(r) for r in PYPROJECT["dependency-groups"]["test"])
    for name, version_range in run.items():  # the authors' tools may need more (alembic's hook)
        assert env[name] == test_group.get(name, version_range), name
    (pip_part,) = [d["pip"] for d in ENVIRONMENT["dependencies"] if isinstance(d, dict)]
    in_pip = dict(spec(r) for r in pip_part if not r.startswith("-e"))
    conda_names = {"build": "python-build"}  # conda-forge's names where PyPI's differ
    for name, version_range in test_group.items():
        found = env.get(conda_names.get(name, name), in_pip.get(name))
        assert found == version_range, (name, found, version_range)
    assert {"conda-build", "pip"} <= env.keys()
    assert env["conda-build"] == ">=26.3"  # the first conda-build that reads v1 recipes
    assert ENVIRONMENT["name"] == "py311"
    # No nodefaults: conda 26.7's env create sends it to the solver as a channel.
    assert ENVIRONMENT["channels"] == ["conda-forge"]
    assert pip_part[0] == "-e ."


def test_entry_point_agrees(rendered: dict) -> None:
    (entry,) = rendered["build"]["python"]["entry_points"]
    name, target = (part.strip() for part in entry.split("="))
    assert PYPROJECT["project"]["scripts"] == {name: target}


# 3-6. the real package ---------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(the .conda file, the bootstrap channel): the unmodified recipe, built offline."""
    import os

    from rattler_build import Stage0Recipe, ToolConfiguration

    channel = bootstrap_channel()
    with scratch(tmp_path_factory, "conda-build") as work:
        # Each run its own package cache: a stale cached mypkg must never be tested.
        os.environ["RATTLER_CACHE_DIR"] = str(work / "rattler-cache")
        variant = Stage0Recipe.from_file(RECIPE).render()[0]
        result = variant.run_build(
            tool_config=ToolConfiguration(), output_dir=work / "output", channels=[channel.as_uri()]
        )
        (package,) = result.packages
        yield Path(package), channel


@pytest.fixture(scope="module")
def extracted(built: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from conda_package_handling import api as cph

    with scratch(tmp_path_factory, "extracted") as destination:
        cph.extract(str(built[0]), dest_dir=str(destination))
        yield destination


def test_package_metadata(built: tuple[Path, Path], extracted: Path, rendered: dict) -> None:
    assert built[0].name.startswith(f"mypkg-{rendered['package']['version']}-py")
    assert built[0].parent.name == "noarch"
    index = json.loads((extracted / "info" / "index.json").read_text())
    assert index["name"] == "mypkg" and index["noarch"] == "python" and index["subdir"] == "noarch"
    assert sorted(index["depends"]) == sorted(rendered["requirements"]["run"])
    assert index["constrains"] == rendered["requirements"]["run_constraints"]
    link = json.loads((extracted / "info" / "link.json").read_text())
    assert link["noarch"] == {"type": "python", "entry_points": ["mypkg-migrate = mypkg.migrate.cli:main"]}
    assert (extracted / "info" / "licenses" / "LICENSE").read_text().startswith("MIT License")


def test_package_carries_models_and_every_migration(extracted: Path) -> None:
    package = extracted / "site-packages" / "mypkg"
    for module in ("__init__.py", "migrate/commands.py", "migrate/cli/handlers.py", "migrate/identity.py", "models/__init__.py", "models/note.py"):
        assert (package / module).is_file(), module
    migrations = package / "migrations"
    assert (migrations / "env.py").read_text() == (REPO / "alembic" / "env.py").read_text()
    assert (migrations / "script.py.mako").is_file()
    shipped = sorted(p.name for p in (migrations / "versions").glob("*.py"))
    assert shipped == REVISIONS and len(shipped) >= 6
    assert not (migrations / "__init__.py").exists()
    manifest = json.loads((migrations / "manifest.json").read_text())
    assert sorted(rev["filename"] for rev in manifest["revisions"]) == REVISIONS
    assert not list(extracted.rglob("tests/*.py")), "the test suite is not shipped"


def test_recipe_own_tests_pass_against_the_artifact(built: tuple[Path, Path]) -> None:
    from rattler_build import Package

    package, channel = built
    results = Package.from_file(package).run_tests(channel=[channel.as_uri()])
    for result in results:
        assert result.success, "\n".join(result.output[-30:])
    assert len(results) == 2
    assert "pip check passed" in "\n".join(results[0].output)
    migration_log = "\n".join(results[1].output)
    assert "upgraded from base (empty database) to" in migration_log
    assert "downgraded from" in migration_log and "to base (empty database)" in migration_log
    assert "every applied revision matches the script shipped" in migration_log


def test_installed_into_a_fresh_prefix_the_command_migrates(
    built: tuple[Path, Path], tmp_path: Path
) -> None:
    import rattler

    from tests.packaging.conda_bootstrap import index

    package, channel = built
    local = tmp_path / "local-channel"
    (local / "noarch").mkdir(parents=True)
    (local / "noarch" / package.name).write_bytes(package.read_bytes())
    index(local)
    records = asyncio.run(
        rattler.solve([local.as_uri(), channel.as_uri()], ["mypkg", "python 3.11.*"], platforms=["linux-64", "noarch"])
    )
    assert {r.name.normalized for r in records} >= {"mypkg", "python", "alembic", "sqlalchemy"}
    prefix = tmp_path / "prefix"
    asyncio.run(rattler.install(records, prefix, cache_dir=tmp_path / "pkgs", show_progress=False))

    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    command = prefix / "bin" / "mypkg-migrate"
    clean_env = {"PATH": f"{prefix / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    upgrade = subprocess.run([command, "upgrade"], cwd=workdir, env=clean_env, capture_output=True, text=True)
    assert upgrade.returncode == 0, upgrade.stderr
    assert (workdir / "mypkg.db").is_file()
    where = subprocess.run(
        [prefix / "bin" / "python", "-c", "import mypkg.migrate.history.scripts as s; print(s.script_location())"],
        cwd=workdir, env=clean_env, capture_output=True, text=True,
    )
    assert where.stdout.strip() == "mypkg:migrations", where.stderr
    status = subprocess.run([command, "status", "--json"], cwd=workdir, env=clean_env, capture_output=True, text=True)
    assert status.returncode == 0 and json.loads(status.stdout)["at_head"] is True
