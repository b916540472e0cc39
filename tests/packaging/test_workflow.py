"""The conda workflow, which only runs where conda-forge is reachable, is checked here for
what it promises: every platform, conda-build 26.3+, a fresh environment, real commands."""

from __future__ import annotations

import shlex

import yaml

from mypkg.migrate.cli.handlers import build_parser
from tests.conftest import REPO

WORKFLOW = yaml.safe_load((REPO / ".github" / "workflows" / "conda.yml").read_text())


def steps_of(job: str) -> list[dict]:
    return WORKFLOW["jobs"][job]["steps"]


def commands_of(job: str) -> list[str]:
    return [line.strip() for step in steps_of(job) for line in step.get("run", "").splitlines() if line.strip()]


def test_conda_build_runs_on_linux_macos_and_windows() -> None:
    job = WORKFLOW["jobs"]["conda-build"]
    assert set(job["strategy"]["matrix"]["os"]) == {"ubuntu-latest", "macos-latest", "windows-latest"}
    assert job["runs-on"] == "${{ matrix.os }}"
    assert job["strategy"]["fail-fast"] is False  # one platform's failure hides no other


def test_it_builds_with_a_conda_build_that_reads_v1_recipes() -> None:
    commands = commands_of("conda-build")
    assert any('"conda-build>=26.3"' in c for c in commands)
    assert "conda build recipe/ --output-folder conda-bld" in commands


def test_it_installs_into_a_fresh_environment_and_migrates_up_and_down() -> None:
    commands = commands_of("conda-build")
    create = next(c for c in commands if c.startswith("conda create"))
    assert "-n smoke" in create and "-c ./conda-bld" in create and create.endswith(" mypkg")
    migrate = [c for c in commands if c.startswith("mypkg-migrate")]
    assert [c.split("||")[0].strip() for c in migrate] == [
        "mypkg-migrate upgrade", "mypkg-migrate status", "mypkg-migrate downgrade base --yes", "mypkg-migrate status",
    ]
    assert commands.index("conda activate smoke") < commands.index("mypkg-migrate upgrade")


def test_every_command_it_runs_exists_in_the_cli() -> None:
    for job in WORKFLOW["jobs"]:
        for command in commands_of(job):
            if command.startswith("mypkg-migrate"):
                build_parser().parse_args(shlex.split(command.split("||")[0])[1:])
