"""The conda workflow, which only runs where conda-forge is reachable, is checked here for
what it promises: the noarch package built once with the conda-build executable, that
artifact tested on every platform with exact exit codes, environment.yml created with the
README's command, and .ci/run."""

from __future__ import annotations

import re
import shlex

import yaml

from mypkg.migrate.cli.handlers import build_parser
from tests.conftest import REPO

WORKFLOW = yaml.safe_load((REPO / ".github" / "workflows" / "conda.yml").read_text())
README = (REPO / "README.md").read_text()


def steps_of(job: str) -> list[dict]:
    return WORKFLOW["jobs"][job]["steps"]


def commands_of(job: str) -> list[str]:
    return [line.strip() for step in steps_of(job) for line in step.get("run", "").splitlines() if line.strip()]


def test_the_noarch_package_is_built_once_with_the_conda_build_executable() -> None:
    build = WORKFLOW["jobs"]["build"]
    assert "strategy" not in build and build["runs-on"] == "ubuntu-latest"
    commands = commands_of("build")
    assert any('"conda-build>=26.3"' in c for c in commands)
    assert "conda-build recipe/ --output-folder conda-bld" in commands
    # `conda build` (the subcommand) fails on conda 26.3.1+ with conda-build outside base.
    assert not [c for c in commands if re.match(r"conda build\b", c)]
    upload = next(s for s in steps_of("build") if s.get("uses", "").startswith("actions/upload-artifact"))
    assert upload["with"]["path"] == "conda-bld/noarch/*.conda"


def test_the_artifact_is_tested_on_linux_macos_and_windows() -> None:
    job = WORKFLOW["jobs"]["artifact"]
    assert job["needs"] == "build"
    assert set(job["strategy"]["matrix"]["os"]) == {"ubuntu-latest", "macos-latest", "windows-latest"}
    assert job["runs-on"] == "${{ matrix.os }}"
    assert job["strategy"]["fail-fast"] is False  # one platform's failure hides no other
    download = next(s for s in steps_of("artifact") if s.get("uses", "").startswith("actions/download-artifact"))
    assert download["with"]["name"] == "mypkg-conda"


def test_it_installs_into_a_fresh_environment_and_checks_exit_codes_exactly() -> None:
    commands = commands_of("artifact")
    create = next(c for c in commands if c.startswith("conda create"))
    assert "-n smoke" in create and "-c ./channel" in create and create.endswith(" mypkg")
    migrate = [c for c in commands if "mypkg-migrate" in c]
    assert migrate == [
        "mypkg-migrate upgrade", "mypkg-migrate status", "mypkg-migrate downgrade base --yes",
        'code=0; mypkg-migrate status || code=$?; test "$code" -eq 1',
    ]
    assert commands.index("conda activate smoke") < commands.index("mypkg-migrate upgrade")
    # `bash -e`: every other command's non-zero exit fails the step; `|| test $? -eq 1`
    # would have accepted exit 0 too.
    assert WORKFLOW["jobs"]["artifact"]["defaults"]["run"]["shell"] == "bash -el {0}"


def test_the_environment_is_created_with_the_readmes_command() -> None:
    commands = commands_of("environment")
    assert "conda env create -f environment.yml" in commands
    assert "conda env create -f environment.yml" in README
    setup = next(s for s in steps_of("environment") if s.get("uses", "").startswith("conda-incubator"))
    assert "environment-file" not in setup["with"]  # setup-miniconda's env update is not the README's command
    install = next(c for c in commands if c.startswith("sudo apt-get update"))
    assert {"postgresql", "pgbouncer", "mariadb-server"} <= set(install.split())
    assert commands[-1] == "python -m pytest"


def test_one_job_runs_the_repositorys_own_ci() -> None:
    assert "CI=true bash .ci/run" in commands_of("ci")


def test_every_command_it_runs_exists_in_the_cli() -> None:
    for job in WORKFLOW["jobs"]:
        for command in commands_of(job):
            for part in re.split(r";|\|\|", command):
                part = part.strip()
                if part.startswith("mypkg-migrate"):
                    build_parser().parse_args(shlex.split(part)[1:])
