"""The authors' workflow: the plain ``alembic`` command from the source root, as Alembic documents it."""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import mypkg
from tests.conftest import REPO


@pytest.fixture
def checkout(source_copy: Path) -> Path:
    shutil.copy(REPO / "alembic.ini", source_copy / "alembic.ini")
    return source_copy


def alembic(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "MYPKG_DATABASE_URL"}
    environment.update(env)
    result = subprocess.run(
        [sys.executable, "-m", "alembic", *args],
        cwd=root, env=environment, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result


def version(path: Path) -> list[str]:
    with sqlite3.connect(path) as connection:
        return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]


def test_upgrade_head_and_downgrade_minus_one(checkout: Path) -> None:
    alembic(checkout, "upgrade", "head")
    assert version(checkout / "mypkg.db") == list(mypkg.heads())
    alembic(checkout, "downgrade", "-1")
    assert version(checkout / "mypkg.db") == [mypkg.history()[-2].revision]
    assert "(head)" not in alembic(checkout, "current").stdout


def test_environment_variable_wins_over_alembic_ini(checkout: Path) -> None:
    alembic(checkout, "upgrade", "head", MYPKG_DATABASE_URL=f"sqlite:///{checkout}/env.db")
    assert (checkout / "env.db").exists() and not (checkout / "mypkg.db").exists()


def test_revision_then_autogenerate_from_a_model_change(checkout: Path) -> None:
    alembic(checkout, "upgrade", "head")
    alembic(checkout, "revision", "-m", "empty step")
    model = checkout / "mypkg" / "models" / "note.py"
    model.write_text(
        model.read_text().replace(
            "    body: Mapped[str] = mapped_column(Text)\n",
            "    body: Mapped[str] = mapped_column(Text)\n"
            "    pinned: Mapped[bool | None] = mapped_column()\n",
        )
    )
    alembic(checkout, "upgrade", "head")
    alembic(checkout, "revision", "--autogenerate", "-m", "add pinned to note")
    generated = next((checkout / "alembic" / "versions").glob("*_add_pinned_to_note.py")).read_text()
    # Batch mode is what env.py asks autogenerate to write, so SQLite can run it.
    assert "batch_alter_table('note'" in generated
    assert "add_column(sa.Column('pinned', sa.Boolean()" in generated
    alembic(checkout, "upgrade", "head")
    with sqlite3.connect(checkout / "mypkg.db") as connection:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(note)")}
    assert "pinned" in columns
    alembic(checkout, "downgrade", "-1")
    with sqlite3.connect(checkout / "mypkg.db") as connection:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(note)")}
    assert "pinned" not in columns


def test_no_init_py_shadows_the_alembic_library() -> None:
    assert not (REPO / "alembic" / "__init__.py").exists()
    assert not (REPO / "alembic" / "versions" / "__init__.py").exists()


def test_the_alembic_command_writes_ledger_rows_too(checkout: Path) -> None:
    """The ledger is true whoever migrated: after `alembic downgrade -1` the head is not applied."""
    alembic(checkout, "upgrade", "head")
    alembic(checkout, "downgrade", "-1")
    url = f"sqlite:///{checkout / 'mypkg.db'}"
    rows = mypkg.applied_history(url)
    head = mypkg.heads()[0]
    assert [(r.revision, r.outcome, r.detail) for r in rows][-2:] == [
        (head, "applied", "alembic command"), (head, "reverted", "alembic command"),
    ]
    assert len(rows) == len(mypkg.history()) + 1
    script = next((checkout / "alembic" / "versions").glob(f"*_{head}_*.py"))
    assert rows[-1].checksum == hashlib.sha256(script.read_bytes()).hexdigest()
    assert mypkg.verify(url) == []


def test_only_upgrade_and_downgrade_write_the_ledger(checkout: Path) -> None:
    alembic(checkout, "current")
    alembic(checkout, "stamp", "head")
    with sqlite3.connect(checkout / "mypkg.db") as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "mypkg_migration_ledger" not in tables


def test_models_with_another_naming_convention_are_refused_by_both_commands(checkout: Path) -> None:
    """One source of truth: the runner names constraints from mypkg/naming.py, alembic from the
    models' MetaData. A team that gives the models another convention is told at once, by
    alembic and by verify, instead of getting other constraint names from each command."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    built = subprocess.run([sys.executable, "-m", "mypkg", "--url", f"sqlite:///{checkout / 'downgrade.db'}", "upgrade"],
                           cwd=checkout, env={**environment, "PYTHONPATH": str(checkout)}, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr  # a database built before the models changed
    base = checkout / "mypkg" / "models" / "base.py"
    base.write_text(base.read_text().replace(
        "metadata = MetaData(naming_convention=NAMING_CONVENTION)",
        'metadata = MetaData(naming_convention={**NAMING_CONVENTION, "uq": "uniq_%(table_name)s_%(column_0_name)s"})'))
    environment = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    refused = subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=checkout, env=environment,
                             capture_output=True, text=True, timeout=120)
    told = refused.stdout + refused.stderr
    assert refused.returncode != 0 and "Traceback" not in told  # Alembic's own failure: exit 255
    assert "FAILED: the models' MetaData names constraints by another convention" in told
    assert "differs in uq" in told
    database = checkout / "mypkg.db"
    if database.exists():
        with sqlite3.connect(database) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == set(), tables  # nothing ran, not even the ledger table was left behind
    environment["PYTHONPATH"] = str(checkout)
    # The runner does not import the models, and refuses them all the same: no command
    # builds a database that another then rejects.
    for command in ("upgrade", "downgrade"):
        target = checkout / f"{command}.db"
        result = subprocess.run([sys.executable, "-m", "mypkg", "--url", f"sqlite:///{target}", command,
                                 *(["-1"] if command == "downgrade" else [])],
                                cwd=checkout, env=environment, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        (line,) = result.stderr.strip().splitlines()
        assert "another convention than mypkg/naming.py (differs in uq)" in line, (command, line)
    with sqlite3.connect(checkout / "upgrade.db") as connection:
        assert connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall() == []
    with sqlite3.connect(checkout / "downgrade.db") as connection:  # still at head
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [(mypkg.heads()[0],)]
    for command in ("verify", "check"):
        result = subprocess.run([sys.executable, "-m", "mypkg", "--url", f"sqlite:///{checkout / 'x.db'}", command],
                                cwd=checkout, env=environment, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1
        (line,) = result.stderr.strip().splitlines()
        assert "another convention than mypkg/naming.py" in line, (command, line)


@pytest.mark.parametrize(("source", "differs"), [
    ("metadata = MetaData(naming_convention=NAMING_CONVENTION)", None),
    ("metadata = sa.MetaData(naming_convention=naming.NAMING_CONVENTION)", None),
    ('metadata = MetaData(naming_convention={**NAMING_CONVENTION, "uq": "u_%(table_name)s"})', ("uq",)),
    ("metadata = MetaData()", ("ck", "fk", "pk", "uq")),
    ('metadata = MetaData(naming_convention={"ix": "ix_%(column_0_label)s"})', ("ck", "fk", "pk", "uq")),
    ("metadata = MetaData(naming_convention=build_convention())", None),  # code: the importing commands tell
    ('metadata = MetaData(naming_convention={**other, "pk": "pk_%(table_name)s"})', None),
    ("metadata = MetaData(naming_convention=NAMING_CONVENTION)\nmore = MetaData(schema='x')", ("ck", "fk", "pk", "uq")),
])
def test_the_models_convention_is_read_from_their_source(tmp_path: Path, source: str,
                                                          differs: tuple[str, ...] | None) -> None:
    """What upgrade reads without importing the models: every MetaData(...) of the models
    package, a dict literal compared key by key, the one source's name accepted."""
    from mypkg.migrate.history.conventions import models_convention_differs
    from mypkg.naming import NAMING_CONVENTION

    models = tmp_path / "models"
    (models / "sub").mkdir(parents=True)
    (models / "sub" / "base.py").write_text(f"{source}\n")
    (models / "broken.py").write_text("this is not python (\n")  # importing it fails louder elsewhere
    models_convention_differs.cache_clear()  # once per process for the package; a new folder per case here
    assert models_convention_differs(models, tuple(sorted(NAMING_CONVENTION.items()))) == differs


def test_alembic_revision_writes_the_phase_and_x_phase_post_makes_a_post_deploy_revision(checkout: Path) -> None:
    """docs/deploying.md: authors make a post-deploy revision with ``alembic revision``."""
    alembic(checkout, "revision", "-m", "add a column")
    alembic(checkout, "-x", "phase=post", "revision", "-m", "drop a column")
    versions = checkout / "alembic" / "versions"
    added = next(versions.glob("*_add_a_column.py")).read_text()
    dropped = next(versions.glob("*_drop_a_column.py")).read_text()
    assert 'phase: str = "pre"' in added or "phase: str = 'pre'" in added
    assert "phase: str = 'post'" in dropped
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}, "PYTHONPATH": str(checkout)}
    state = subprocess.run([sys.executable, "-m", "mypkg", "--url", f"sqlite:///{checkout / 'x.db'}", "status",
                            "--json"], cwd=checkout, env=env, capture_output=True, text=True, timeout=120)
    import json

    phases = [rev["phase"] for rev in json.loads(state.stdout)["pending"]]
    assert phases[-2:] == ["pre", "post"] and set(phases[:-2]) == {"pre"}
    alembic(checkout, "upgrade", "head")  # plain alembic runs both, as before
