"""The README's examples are real: replay every ``console`` block in order and compare.

Each ``$ mypkg-migrate ...`` line runs as a subprocess in one temporary directory (so
the default ``sqlite:///mypkg.db`` is a fresh file); ``$ echo $?`` checks the previous
exit code. Durations like ``(6 ms)`` vary and are normalised.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from mypkg.migrate.errors import ExitCode
from tests.conftest import REPO, Cli

README = (REPO / "README.md").read_text()
DURATION = re.compile(r"\(\d+ ms\)")


def console_sessions() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for every ``$`` line of every console block."""
    steps: list[tuple[str, list[str]]] = []
    for block in re.findall(r"```console\n(.*?)```", README, flags=re.S):
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
        result = cli(*args[1 : redirect])
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


def test_quick_start_commands_are_the_ones_ci_runs() -> None:
    fenced = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    assert fenced[0].strip() == "python3 -m pip install . && mypkg-migrate upgrade"
    assert fenced[1].strip() == "bash .ci/run"
    ci = (REPO / ".ci" / "run").read_text()
    assert "python -m pytest" in ci.splitlines()[-1]
    assert "python -m pytest" in README


def test_every_command_line_in_both_readmes_parses() -> None:
    """Each ``mypkg-migrate ...`` line shown (English and Portuguese) is accepted by the CLI."""
    from mypkg.migrate.cli import build_parser

    seen = 0
    for readme in ("README.md", "README.pt-BR.md"):
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
