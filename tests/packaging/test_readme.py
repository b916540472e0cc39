"""The README's examples are real: replay every ``console`` block in order and compare.

Each ``$ mypkg-migrate ...`` line runs as a subprocess on a pseudo-terminal, as a reader
at one would run it, in one temporary directory (so
the default ``sqlite:///mypkg.db`` is a fresh file); ``$ echo $?`` checks the previous
exit code. Durations like ``(6 ms)`` vary and are normalised.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
import yaml

import mypkg
from mypkg.migrate.errors import ExitCode
from tests.conftest import REPO, Cli

README = (REPO / "README.md").read_text()
#: The transcripts: the front page, then the guides in the site's order, one session.
NAV = [page for entry in yaml.safe_load((REPO / "mkdocs.yml").read_text())["nav"] for page in entry.values()]
TRANSCRIPTS = [REPO / "README.md", *(REPO / "docs" / page for page in NAV)]
DURATION = re.compile(r"\(\d+ ms\)")


def console_sessions() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for every ``$`` line of every console block."""
    steps: list[tuple[str, list[str]]] = []
    for block in [b for path in TRANSCRIPTS for b in re.findall(r"```console\n(.*?)```", path.read_text(), flags=re.S)]:
        for line in block.splitlines():
            if line.startswith("$ "):
                steps.append((line[2:], []))
            else:
                steps[-1][1].append(line)
    return steps


def normalise(text: str) -> list[str]:
    return [DURATION.sub("(N ms)", line.rstrip()) for line in text.splitlines() if line.strip()]


def test_console_examples_produce_the_output_shown(cli: Cli) -> None:
    steps = console_sessions()
    assert len(steps) >= 15, "the README lost its examples"
    last_exit = None
    for command, expected in steps:
        if command == "echo $?":
            assert [str(last_exit)] == expected, f"exit code after the previous command: {last_exit}"
            continue
        args = shlex.split(command)
        assert args[0] == "mypkg-migrate", command
        redirect = args.index(">") if ">" in args else None
        # As the docs show it: at a terminal (a log also gets "applying REV" lines, docs/observability.md).
        result = cli(*args[1 : redirect]) if redirect is not None else cli.on_terminal(*args[1:])
        last_exit = result.returncode
        shown = normalise(result.stdout + result.stderr)
        if redirect is not None:
            assert result.returncode == 0, result.stderr
            (cli.cwd / args[redirect + 1]).write_text(result.stdout)
            assert "CREATE TABLE my_table" in result.stdout
            continue
        assert shown == normalise("\n".join(expected)), f"$ {command}\n{result.stdout}{result.stderr}"


def test_exit_code_table_matches_the_code() -> None:
    table = re.search(r"\| exit \| meaning \|\n\|---\|---\|\n((?:\|.*\n)+)", README)
    assert table is not None
    documented = {int(row.split("|")[1]) for row in table.group(1).splitlines()}
    assert documented == {code.value for code in ExitCode}


FRESH_MACHINE = "python3 -m venv .venv && .venv/bin/python -m pip install . && .venv/bin/mypkg-migrate upgrade"


def test_quick_start_commands_are_the_ones_ci_runs() -> None:
    fenced = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    assert fenced[0].strip() == FRESH_MACHINE
    assert fenced[1].strip() == "bash .ci/run"
    ci = (REPO / ".ci" / "run").read_text()
    assert "python -m pytest" in ci.splitlines()[-1]
    assert "python -m pytest" in README


def test_every_command_line_in_both_readmes_parses() -> None:
    """Each ``mypkg-migrate ...`` line shown (English and Portuguese) is accepted by the CLI."""
    from mypkg.migrate.cli.handlers import build_parser

    seen = 0
    for readme in ("README.md", "README.pt-BR.md", *(f"docs/{p.name}" for p in (REPO / "docs").glob("*.md"))):
        text = (REPO / readme).read_text()
        for kind, block in re.findall(r"```(bash|console)\n(.*?)```", text, flags=re.S):
            for line in block.splitlines():
                if kind == "console":  # commands follow "$ "; the rest is output
                    if not line.startswith("$ "):
                        continue
                    line = line[2:]
                line = line.split("#", 1)[0].split(">", 1)[0].strip()
                if not line.startswith("mypkg-migrate"):
                    continue
                args = shlex.split(line)[1:]
                build_parser().parse_args(args)  # SystemExit (exit 2) on anything unknown
                seen += 1
    assert seen >= 25


def _stock_python() -> str:
    """Debian's own python3 when the machine has it (it refuses pip outside a venv)."""
    debian = Path("/usr/bin/python3")
    marker = Path("/usr/lib/python3.11/EXTERNALLY-MANAGED")
    return str(debian) if debian.exists() and marker.exists() else "python3"


@pytest.mark.slow
def test_the_fresh_machine_command_works_on_a_stock_debian_python(tmp_path: Path) -> None:
    """Replayed word for word in a copy of the project, with python3 being Debian's."""
    root = tmp_path / "checkout"
    shutil.copytree(REPO, root, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.db", "build", "dist"))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(_stock_python())
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8"}
    env.update({k: v for k, v in os.environ.items() if k.startswith(("PIP_", "http", "HTTP", "no_proxy", "NO_PROXY"))})
    if _stock_python() != "python3":
        # The command it replaces fails there: PEP 668.
        old = subprocess.run(["bash", "-c", "python3 -m pip install ."], cwd=root, env=env,
                             capture_output=True, text=True, timeout=300)
        assert old.returncode != 0 and "externally-managed-environment" in old.stdout + old.stderr
    result = subprocess.run(["bash", "-c", FRESH_MACHINE], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "upgraded from base (empty database) to" in result.stdout
    with sqlite3.connect(root / "mypkg.db") as connection:
        (version,) = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    assert version == mypkg.heads()[0]
