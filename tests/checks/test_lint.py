"""``mypkg-migrate lint``: squawk on each revision's rendered SQL, mypkg's own rules, the
project's accepted findings, and the hook after ``alembic revision``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mypkg
from mypkg.migrate.checks import lint
from tests.conftest import REPO

HEAD = mypkg.heads()[0]

INDEX_NOT_CONCURRENT = '''\
"""test only: an index built the blocking way

Revision ID: 11a7000000a1
Revises: {parent}
"""
import sqlalchemy as sa
from alembic import op

revision = "11a7000000a1"
down_revision = "{parent}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_my_table_name", "my_table", ["name"])


def downgrade() -> None:
    op.drop_index("ix_my_table_name", table_name="my_table")
'''

NO_DOWNGRADE_AND_DATA = '''\
"""test only: DDL and data together, and nothing to go back

Revision ID: 11a7000000a2
Revises: 11a7000000a1
"""
import sqlalchemy as sa
from alembic import op

revision = "11a7000000a2"
down_revision = "11a7000000a1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("note", sa.Column("archived", sa.Boolean, nullable=True))
    op.execute("UPDATE note SET archived = false")


def downgrade() -> None:
    pass
'''


def run_lint(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-m", "mypkg", "lint", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=180)


@pytest.fixture
def project(source_copy: Path) -> Path:
    """A source checkout with the shipped pyproject.toml (its accepted findings)."""
    shutil.copy(REPO / "pyproject.toml", source_copy / "pyproject.toml")
    shutil.copy(REPO / "alembic.ini", source_copy / "alembic.ini")
    return source_copy


def test_the_shipped_revisions_lint_clean(project: Path) -> None:
    result = run_lint(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "no findings" and result.stderr == ""


def test_squawk_failing_is_said_in_one_line_not_taken_for_no_findings(project: Path) -> None:
    """squawk reads a .squawk.toml from the directory it runs in; a broken one makes it exit
    1 with nothing on stdout: that is squawk failing, not a clean history."""
    (project / ".squawk.toml").write_text("this is = = not toml\n")
    result = run_lint(project)
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "squawk failed on " in line and ": Configuration error: expected an equals" in line, line
    assert "no findings" not in result.stdout


def test_squawk_and_the_own_rules_find_dangerous_revisions(project: Path) -> None:
    versions = project / "alembic" / "versions"
    (versions / "9998_11a7000000a1_index.py").write_text(INDEX_NOT_CONCURRENT.format(parent=HEAD))
    (versions / "9999_11a7000000a2_data.py").write_text(NO_DOWNGRADE_AND_DATA)
    result = run_lint(project)
    assert result.returncode == 1
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("11a7000000a1  require-concurrent-index-creation  CREATE INDEX ix_my_table_name")
               for line in lines), lines
    assert any(line.startswith("11a7000000a2  empty-downgrade  ALTER TABLE note ADD COLUMN archived") for line in lines)
    assert any(line.startswith("11a7000000a2  data-with-ddl  UPDATE note SET archived = false") for line in lines)
    assert all(" -> " in line for line in lines)  # each says the fix
    found = json.loads(run_lint(project, "--json").stdout)["findings"]
    assert {(f["revision"], f["rule"]) for f in found} >= {
        ("11a7000000a1", "require-concurrent-index-creation"), ("11a7000000a2", "empty-downgrade"),
    }
    only = run_lint(project, f"{HEAD}:11a7000000a1")  # a range: that revision only
    assert only.returncode == 1 and "11a7000000a2" not in only.stdout


def test_findings_accepted_in_pyproject_need_a_reason(project: Path) -> None:
    (project / "alembic" / "versions" / "9998_11a7000000a1_index.py").write_text(INDEX_NOT_CONCURRENT.format(parent=HEAD))
    config = project / "pyproject.toml"
    config.write_text(config.read_text() + '\n[[tool.mypkg.lint.ignore]]\nrevision = "11a7000000a1"\n'
                      'rule = "require-concurrent-index-creation"\nreason = "a table of ten rows"\n')
    assert run_lint(project).returncode == 0
    config.write_text(config.read_text().replace('reason = "a table of ten rows"', 'reason = ""'))
    refused = run_lint(project)
    assert refused.returncode == 2 and "give a reason" in refused.stderr


def test_alembic_revision_runs_lint_on_the_new_script(project: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}, "PYTHONPATH": str(project)}
    result = subprocess.run([sys.executable, "-m", "alembic", "revision", "-m", "nothing yet"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Running post write hook 'lint'" in result.stdout + result.stderr
    assert "no findings" in result.stdout + result.stderr


def test_a_script_path_means_that_revision_alone() -> None:
    script = next((REPO / "alembic" / "versions").glob(f"*_{HEAD}_*.py"))
    parent = mypkg.history()[-2].revision
    assert lint.range_of(str(script)) == f"{parent}:{HEAD}"
    assert lint.range_of("base:heads") == "base:heads"


def test_without_squawk_the_own_rules_still_run(project: Path, tmp_path: Path) -> None:
    """An interpreter whose environment has no squawk (a venv of its own, on a PATH without it)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=120)
    site = subprocess.run([sys.executable, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}
    env.update(PYTHONPATH=os.pathsep.join([str(project), site]), PATH="/usr/bin:/bin")
    (project / "alembic" / "versions" / "9999_11a7000000a2_data.py").write_text(
        NO_DOWNGRADE_AND_DATA.replace('"11a7000000a1"', f'"{HEAD}"'))
    result = subprocess.run([str(venv / "bin" / "python"), "-m", "mypkg", "lint"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert "squawk is not installed" in line and "pip install squawk-cli" in line and "mypkg[" not in line
    assert "11a7000000a2  empty-downgrade" in result.stdout


UNNAMED_UNIQUE = '''\
"""test only: a unique constraint left unnamed

Revision ID: 11a7000000a3
Revises: {parent}
"""
import sqlalchemy as sa
from alembic import op

revision = "11a7000000a3"
down_revision = "{parent}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("probe", sa.Column("id", sa.Integer, primary_key=True), sa.Column("code", sa.String(8)),
                    sa.UniqueConstraint("code"))


def downgrade() -> None:
    op.drop_table("probe")
'''


def test_an_unnamed_constraint_is_found_only_without_a_naming_convention(project: Path) -> None:
    (project / "alembic" / "versions" / "9999_11a7000000a3_probe.py").write_text(UNNAMED_UNIQUE.format(parent=HEAD))
    assert run_lint(project).returncode == 0  # the convention names it uq_probe_code
    naming = project / "mypkg" / "naming.py"
    naming.write_text(naming.read_text().replace('    "uq": "uq_%(table_name)s_%(column_0_name)s",\n', ""))
    result = run_lint(project)
    assert result.returncode == 1
    assert "11a7000000a3  unnamed-constraint  CREATE TABLE probe (" in result.stdout
    assert "add its kind to the MetaData naming convention" in result.stdout


def test_a_script_changed_since_its_release_is_found(project: Path) -> None:
    recorded = run_lint(project, "--record-release", "0.1.0")
    assert recorded.returncode == 0, recorded.stderr
    assert "recorded the checksums of 6 script(s) of release 0.1.0" in recorded.stdout
    assert json.loads((project / "alembic" / "released.json").read_text())["0.1.0"].keys() == {
        rev.revision for rev in mypkg.history()
    }
    assert run_lint(project).returncode == 0
    script = next((project / "alembic" / "versions").glob(f"*_{HEAD}_*.py"))
    script.write_text(script.read_text() + "\n# a later edit\n")
    result = run_lint(project)
    assert result.returncode == 1
    assert f"{HEAD}  released-script-changed  {script.name}  -> it changed since release 0.1.0" in result.stdout
    unknown = run_lint(project, "--record-release", "9.9")
    assert unknown.returncode == 2 and "unknown mypkg version '9.9'" in unknown.stderr


def reads_the_database_history(root: Path, *, twice: bool = False) -> Path:
    """Three revisions: a table, a data migration that reads the database (as real histories
    do: it cannot be rendered offline), then a dangerous one after it."""
    from tests.history import histories

    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        '[tool.mypkg.lint]\nassume-lock-timeout = true\ndisable = ["require-statement-timeout", '
        '"prefer-bigint-over-int", "prefer-identity", "prefer-text-field"]\n')
    return histories.project_with(root, [
        histories.script("a.py", "aa00000000a1", None, "table",
                         upgrade='op.create_table("t", sa.Column("id", sa.Integer, primary_key=True), '
                                 'sa.Column("name", sa.String(20)))',
                         downgrade='op.drop_table("t")'),
        histories.script("b.py", "bb00000000b2", "aa00000000a1", "reads the database",
                         upgrade='rows = op.get_bind().execute(sa.text("SELECT id FROM t")).fetchall()\n'
                                 'assert rows is not None',
                         downgrade='op.get_bind().execute(sa.text("SELECT 1")).fetchall()'),
        histories.script("c.py", "cc00000000c3", "bb00000000b2", "dangerous",
                         upgrade='op.add_column("t", sa.Column("code", sa.String(10), nullable=False))',
                         downgrade='op.drop_column("t", "code")'),
        *([histories.script("d.py", "dd00000000d4", "cc00000000c3", "reads it again",
                            upgrade='op.get_bind().execute(sa.text("SELECT 2")).fetchall()',
                            downgrade='op.get_bind().execute(sa.text("SELECT 3")).fetchall()')] if twice else []),
    ])


def test_two_revisions_that_read_the_database_are_two_notes(tmp_path: Path) -> None:
    """The second one is not taken for the first failing again (which would be a loop)."""
    root = reads_the_database_history(tmp_path / "project", twice=True)
    result = run_lint(root)
    notes = sorted(line.split(": note: ")[1].split(" is not")[0] for line in result.stderr.splitlines()
                   if "not checkable offline" in line)
    assert notes == ["bb00000000b2 (downgrade)", "bb00000000b2 (upgrade)", "dd00000000d4 (downgrade)",
                     "dd00000000d4 (upgrade)"], result.stderr
    assert result.returncode == 1 and "cc00000000c3" in result.stdout, result.stdout + result.stderr


def test_a_revision_that_reads_the_database_is_a_note_and_the_rest_is_linted(tmp_path: Path) -> None:
    root = reads_the_database_history(tmp_path / "project")
    result = run_lint(root)
    notes = [line for line in result.stderr.splitlines() if "not checkable offline" in line]
    assert [note.split(":")[1].strip() for note in notes] == ["note"] * 2, result.stderr
    assert any("bb00000000b2 (upgrade) is not checkable offline" in note for note in notes)
    assert any("bb00000000b2 (downgrade) is not checkable offline" in note for note in notes)
    # The revision after it was linted: its NOT NULL column without a default is found.
    assert result.returncode == 1
    assert "cc00000000c3" in result.stdout, result.stdout


def test_notes_alone_do_not_fail_the_lint(tmp_path: Path) -> None:
    root = reads_the_database_history(tmp_path / "project")
    result = run_lint(root, "aa00000000a1:bb00000000b2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "bb00000000b2 (upgrade) is not checkable offline" in result.stderr
    assert "no findings" in result.stdout


def test_a_range_is_downgraded_from_its_own_end_not_from_the_heads(tmp_path: Path) -> None:
    """lint A:B rendered the downgrades from the heads: a revision past B that cannot be
    rendered (or a finding past B) leaked into a lint of A:B."""
    root = reads_the_database_history(tmp_path / "project")
    (root / "alembic" / "versions" / "b.py").write_text(
        (root / "alembic" / "versions" / "b.py").read_text().replace(
            'op.get_bind().execute(sa.text("SELECT 1")).fetchall()', "pass"))
    result = run_lint(root, "base:aa00000000a1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not checkable" not in result.stderr and "bb00000000b2" not in result.stdout + result.stderr


def test_an_installed_package_lints_as_the_source_tree_does(tmp_path: Path) -> None:
    """The accepted findings live beside the scripts (alembic/lint.toml, bundled as
    migrations/lint.toml): linted from an install, away from any pyproject.toml, the shipped
    revisions are as clean as in the source tree."""
    from tests.packaging.test_damaged_install import lay_out_install

    site = lay_out_install(tmp_path)
    assert (site / "mypkg" / "migrations" / "lint.toml").is_file()
    work = tmp_path / "work"
    work.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}, "PYTHONPATH": str(site)}
    for dialect in ("postgresql", "sqlite"):
        result = subprocess.run([sys.executable, "-m", "mypkg", "lint", "--dialect", dialect], cwd=work, env=env,
                                capture_output=True, text=True, timeout=180)
        assert (result.returncode, result.stdout.strip()) == (0, "no findings"), (dialect, result.stdout, result.stderr)


def test_batch_mode_table_copies_are_not_data_with_ddl(tmp_path: Path) -> None:
    from mypkg.migrate.checks import lint

    chunk = ("BEGIN;\nCREATE TABLE _alembic_tmp_t (id INTEGER NOT NULL, PRIMARY KEY (id));\n"
             "INSERT INTO _alembic_tmp_t (id) SELECT t.id FROM t;\nDROP TABLE t;\n"
             "ALTER TABLE _alembic_tmp_t RENAME TO t;\nCOMMIT;\n")
    assert [f.rule for f in lint.own_rules({"r1": chunk}, {"r1": "BEGIN;\nDROP TABLE x;\nCOMMIT;\n"})] == []
    with_data = chunk.replace("DROP TABLE t;", "UPDATE t SET id = id;\nDROP TABLE t;")
    assert [f.rule for f in lint.own_rules({"r1": with_data}, {"r1": "BEGIN;\nDROP TABLE x;\nCOMMIT;\n"})] == ["data-with-ddl"]


def test_a_revision_that_cannot_run_anywhere_is_a_finding_not_a_note(tmp_path: Path) -> None:
    """An unnamed CHECK under a naming convention whose ``ck`` needs the constraint's name:
    Alembic cannot even render it, and upgrade fails on it. That is a finding (exit 1),
    not a note; a revision that reads the database is still a note."""
    from tests.history import histories

    root = histories.project_with(tmp_path / "project", [
        histories.script("a.py", "aa00000000a1", None, "table with an unnamed check",
                         upgrade='op.create_table("t", sa.Column("id", sa.Integer, primary_key=True), '
                                 'sa.Column("qty", sa.Integer), sa.CheckConstraint("qty > 0"))',
                         downgrade='op.drop_table("t")'),
        histories.script("b.py", "bb00000000b2", "aa00000000a1", "reads the database",
                         upgrade='op.get_bind().execute(sa.text("SELECT 1")).fetchall()', downgrade="pass"),
    ])
    result = run_lint(root, "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    payload = json.loads(result.stdout)
    (finding,) = [f for f in payload["findings"] if f["rule"] == "does-not-run"]
    assert finding["revision"] == "aa00000000a1" and "constraint_name" in finding["statement"]
    assert [(u["revision"], u["direction"]) for u in payload["not_checkable"]] == [("bb00000000b2", "upgrade")]
    upgrade = subprocess.run([sys.executable, "-m", "mypkg", "--url", f"sqlite:///{tmp_path / 'x.db'}", "upgrade"],
                             cwd=root, capture_output=True, text=True, timeout=120,
                             env={**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")},
                                  "PYTHONPATH": str(root)})
    assert upgrade.returncode == 1  # what lint said: it cannot run


def test_widening_a_varchar_and_seed_rows_in_a_new_table_are_no_findings(tmp_path: Path) -> None:
    """PostgreSQL widens a varchar, or makes it text, without rewriting the table: squawk's
    changing-column-type is a false positive there (the type before comes from the history
    rendered so far); narrowing it still is a finding. Seed rows inserted into a table the
    same revision creates hold no lock anyone waits on: no data-with-ddl; an UPDATE of an
    existing table beside DDL still is."""
    from tests.history import histories

    root = tmp_path / "project"
    root.mkdir()
    (root / "pyproject.toml").write_text('[tool.mypkg.lint]\nassume-lock-timeout = true\ndisable = ['
                                         '"require-statement-timeout", "prefer-bigint-over-int", "prefer-identity", '
                                         '"prefer-text-field", "prefer-robust-stmts"]\n')
    histories.project_with(root, [
        histories.script("a.py", "aa00000000a1", None, "kinds, seeded",
                         upgrade='kind = op.create_table("kind", sa.Column("id", sa.Integer, primary_key=True), '
                                 'sa.Column("name", sa.String(20)), sa.Column("code", sa.String(10)))\n'
                                 'op.bulk_insert(kind, [{"id": 1, "name": "a", "code": "x"}])',
                         downgrade='op.drop_table("kind")'),
        histories.script("b.py", "bb00000000b2", "aa00000000a1", "widen name",
                         upgrade='op.alter_column("kind", "name", type_=sa.String(200), existing_type=sa.String(20))',
                         downgrade='op.alter_column("kind", "name", type_=sa.String(20), existing_type=sa.String(200))'),
        histories.script("c.py", "cc00000000c3", "bb00000000b2", "name to text",
                         upgrade='op.alter_column("kind", "name", type_=sa.Text, existing_type=sa.String(200))',
                         downgrade='op.alter_column("kind", "name", type_=sa.String(200), existing_type=sa.Text)'),
        histories.script("d.py", "dd00000000d4", "cc00000000c3", "narrow code, touch rows",
                         upgrade='op.alter_column("kind", "code", type_=sa.String(5), existing_type=sa.String(10))\n'
                                 'op.execute("UPDATE kind SET code = upper(code)")',
                         downgrade='op.alter_column("kind", "code", type_=sa.String(10), existing_type=sa.String(5))'),
    ])
    result = run_lint(root, "--json")
    found = sorted((f["revision"], f["rule"]) for f in json.loads(result.stdout)["findings"])
    assert ("aa00000000a1", "data-with-ddl") not in found
    assert not [f for f in found if f[0] in ("bb00000000b2", "cc00000000c3")], found
    assert ("dd00000000d4", "changing-column-type") in found and ("dd00000000d4", "data-with-ddl") in found
    # Linted from the middle, the type before is unknown: squawk's finding is kept.
    middle = run_lint(root, "aa00000000a1:bb00000000b2", "--json")
    assert ("bb00000000b2", "changing-column-type") in {(f["revision"], f["rule"]) for f in json.loads(middle.stdout)["findings"]}


def test_batch_mode_on_sqlite_is_a_note_and_the_revisions_after_it_are_linted(tmp_path: Path) -> None:
    """Offline, batch mode on SQLite cannot reflect the table it rebuilds (Alembic: it
    "requires a live database connection"): that revision is not checkable offline, a note;
    it no longer ends the whole lint (a real history, prefect's, has dozens)."""
    from tests.history import histories

    root = histories.project_with(tmp_path / "project", [
        histories.script("a.py", "aa00000000a1", None, "table",
                         upgrade='op.create_table("t", sa.Column("id", sa.Integer, primary_key=True), '
                                 'sa.Column("name", sa.String(20)))',
                         downgrade='op.drop_table("t")'),
        histories.script("b.py", "bb00000000b2", "aa00000000a1", "batch",
                         upgrade='with op.batch_alter_table("t") as batch:\n    batch.alter_column("name", nullable=False)',
                         downgrade='with op.batch_alter_table("t") as batch:\n    batch.alter_column("name", nullable=True)'),
        histories.script("c.py", "cc00000000c3", "bb00000000b2", "no downgrade",
                         upgrade='op.add_column("t", sa.Column("code", sa.String(10)))', downgrade="pass"),
    ])
    result = run_lint(root, "--dialect", "sqlite", "--json")
    assert result.returncode == 1, result.stdout + result.stderr
    payload = json.loads(result.stdout)
    assert {(u["revision"], u["direction"]) for u in payload["not_checkable"]} >= {("bb00000000b2", "upgrade")}
    assert all("live database connection" in u["reason"] for u in payload["not_checkable"])
    assert ("cc00000000c3", "empty-downgrade") in {(f["revision"], f["rule"]) for f in payload["findings"]}


@pytest.mark.parametrize(("rule", "statement", "before", "dropped"), [
    ("changing-column-type", "ALTER TABLE t ALTER COLUMN name TYPE VARCHAR(200);", "VARCHAR(20)", True),
    ("changing-column-type", "ALTER TABLE t ALTER COLUMN name TYPE TEXT;", "VARCHAR(20)", True),
    ("changing-column-type", "ALTER TABLE t ALTER COLUMN name TYPE VARCHAR(200);", "VARCHAR(200)", True),
    ("changing-column-type", "ALTER TABLE t ALTER COLUMN name TYPE VARCHAR(10);", "VARCHAR(20)", False),
    ("changing-column-type", "ALTER TABLE t ALTER COLUMN name TYPE VARCHAR(200);", "TEXT", False),
    ("changing-column-type", "ALTER TABLE t ALTER COLUMN name TYPE INTEGER;", "VARCHAR(20)", False),
    ("changing-column-type", "ALTER TABLE t ALTER COLUMN other TYPE VARCHAR(200);", "VARCHAR(20)", False),
    # Another rule on the very statement is never dropped (whatever its name sorts after).
    ("prefer-text-field", "ALTER TABLE t ALTER COLUMN name TYPE VARCHAR(200);", "VARCHAR(20)", False),
    ("adding-field-with-default", "ALTER TABLE t ALTER COLUMN name TYPE VARCHAR(200);", "VARCHAR(20)", False),
])
def test_only_squawks_type_change_on_a_widened_varchar_is_dropped(rule: str, statement: str, before: str,
                                                                   dropped: bool) -> None:
    from mypkg.migrate.checks.retyping import widened_without_rewrite

    assert widened_without_rewrite(rule, statement, {("t", "name"): before}) is dropped


def test_a_revision_without_a_downgrade_function_is_a_finding_and_the_lint_goes_on(tmp_path: Path) -> None:
    """gnocchi's head revision defines upgrade() alone. Alembic fails building the downgrade
    step, before any revision's SQL: lint ended there ("failed before the first revision"),
    linting nothing. It is the revision's finding (its downgrade cannot run anywhere), and
    the revisions below it are linted still; downgrading through it says which one it is."""
    from tests.history import histories

    no_downgrade = histories.script("c.py", "cc00000000c3", "bb00000000b2", "upgrade only",
                                    upgrade='op.add_column("t", sa.Column("extra", sa.Integer))')
    root = histories.project_with(tmp_path / "project", [
        histories.script("a.py", "aa00000000a1", None, "a table",
                         upgrade='op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))',
                         downgrade='op.drop_table("t")'),
        histories.script("b.py", "bb00000000b2", "aa00000000a1", "an empty downgrade",
                         upgrade='op.add_column("t", sa.Column("qty", sa.Integer))', downgrade="pass"),
        no_downgrade._replace(text=no_downgrade.text[:no_downgrade.text.index("def downgrade")]),
    ])
    result = run_lint(root, "--json", "--dialect", "postgresql")
    assert result.returncode == 1, result.stdout + result.stderr
    payload = json.loads(result.stdout)
    (finding,) = [f for f in payload["findings"] if f["rule"] == "does-not-run"]
    assert (finding["revision"], finding["statement"]) == ("cc00000000c3", "downgrade: it defines no downgrade()")
    # bb00000000b2's downgrade, below it, was linted: its emptiness is found.
    assert ("bb00000000b2", "empty-downgrade") in {(f["revision"], f["rule"]) for f in payload["findings"]}
    url = f"sqlite:///{tmp_path / 'x.db'}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MYPKG_")}, "PYTHONPATH": str(root)}
    for command in (["upgrade"], ["downgrade", "-1"]):
        done = subprocess.run([sys.executable, "-m", "mypkg", "--url", url, *command], cwd=root, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == (0 if command == ["upgrade"] else 1), done.stderr
    # Not "no revision is there": the revision, and why, in one line; the database where it was.
    assert done.stderr.strip() == ("mypkg-migrate: error: revision cc00000000c3 (upgrade only) defines no "
                                   "downgrade(): it cannot be reverted; nothing was changed")
    assert mypkg.current(url) == ("cc00000000c3",)


def test_revisions_reading_the_database_on_two_branches_are_notes_and_every_revision_is_linted_once(
        tmp_path: Path) -> None:
    """neutron's expand and contract branches each hold revisions that read the database.
    Going on past one, lint started the next span from that revision alone, so Alembic
    walked the other branch again from base, met its reader a second time, and lint failed
    whole ("offline SQL failed in revision ..."). It goes on from every revision rendered."""
    from tests.history import histories

    reads = 'op.get_bind().execute(sa.text("SELECT 1")).fetchall()'
    root = histories.project_with(tmp_path / "project", [
        histories.script("a.py", "aa00000000a1", None, "base",
                         upgrade='op.create_table("t", sa.Column("id", sa.Integer, primary_key=True))',
                         downgrade='op.drop_table("t")'),
        histories.script("x1.py", "ee00000000e1", "aa00000000a1", "expand", labels=("expand",),
                         upgrade='op.add_column("t", sa.Column("e1", sa.Integer))', downgrade='op.drop_column("t", "e1")'),
        histories.script("x2.py", "ee00000000e2", "ee00000000e1", "expand reads", upgrade=reads),
        histories.script("x3.py", "ee00000000e3", "ee00000000e2", "expand again",
                         upgrade='op.create_table("e3", sa.Column("id", sa.Integer, primary_key=True))'),
        histories.script("c1.py", "cc00000000d1", "aa00000000a1", "contract", labels=("contract",),
                         depends_on="ee00000000e1", upgrade=reads),
        histories.script("c2.py", "cc00000000d2", "cc00000000d1", "contract again",
                         upgrade='op.create_table("c2", sa.Column("id", sa.Integer, primary_key=True))'),
    ])
    result = run_lint(root, "--json", "--dialect", "postgresql")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    payload = json.loads(result.stdout)
    assert sorted((u["revision"], u["direction"]) for u in payload["not_checkable"]) == [
        ("cc00000000d1", "upgrade"), ("ee00000000e2", "upgrade")]
    # The revisions after each reader were linted: their empty downgrades are found.
    found = {(f["revision"], f["rule"]) for f in payload["findings"]}
    assert {("ee00000000e3", "empty-downgrade"), ("cc00000000d2", "empty-downgrade")} <= found, found


def test_a_revision_whose_helper_refuses_offline_mode_by_name_is_a_note(tmp_path: Path) -> None:
    """neutron's create_table_if_not_exists raises "cannot be called while in offline mode":
    the revision needs a live database (it runs on MariaDB), like one that reads it: a note,
    not a does-not-run finding."""
    from tests.history import histories

    root = histories.project_with(tmp_path / "project", [
        histories.script("a.py", "aa00000000a1", None, "a helper that needs the database",
                         upgrade=('if op.get_context().as_sql:\n'
                                  '    raise RuntimeError("create_table_if_not_exists cannot be called while in '
                                  'offline mode")'),
                         downgrade="pass"),
    ])
    payload = json.loads(run_lint(root, "--json", "--dialect", "postgresql").stdout)
    assert [(u["revision"], u["direction"]) for u in payload["not_checkable"]] == [("aa00000000a1", "upgrade")]
    assert not [f for f in payload["findings"] if f["rule"] == "does-not-run"], payload["findings"]


def test_a_contract_operation_in_a_pre_deploy_revision_breaks_the_running_release(tmp_path: Path) -> None:
    """Deploy phases: what the old release still reads or writes, dropped, renamed, made NOT
    NULL or narrowed in a revision that runs beside it, is a finding naming it; the same
    work in a post-deploy revision (declared, or on a contract branch) is none, nor is
    squawk's drop-column warning there; a table the revision creates itself is nobody's yet;
    a varchar made longer breaks nothing."""
    from tests.history import histories

    def post(one: histories.Script) -> histories.Script:
        return one._replace(text=one.text.replace("depends_on = None\n", 'depends_on = None\nphase = "post"\n'))

    table = 'op.create_table("t", sa.Column("id", sa.Integer, primary_key=True), sa.Column("a", sa.String(10)), ' \
            'sa.Column("b", sa.Integer), sa.Column("c", sa.Integer), sa.Column("d", sa.Integer), ' \
            'sa.Column("e", sa.String(20)))'
    steps = [
        ("a1", "op.drop_column('t', 'b')", "drop column t.b"),
        ("a2", "op.alter_column('t', 'c', new_column_name='c2', existing_type=sa.Integer())", "rename column t.c"),
        ("a3", "op.alter_column('t', 'd', existing_type=sa.Integer(), nullable=False)", "NOT NULL on t.d"),
        ("a4", "op.alter_column('t', 'e', existing_type=sa.String(20), type_=sa.String(5))", "change the type of t.e"),
        ("a5", "op.rename_table('t', 't2')", "rename table t"),
        # Raw SQL as authors write it: lower case, over several lines.
        ("a6", 'op.execute("""alter table t2\n    drop column a""")', "drop column t2.a"),
    ]
    scripts = [histories.script("a0.py", "ab00000000a0", None, "a table", upgrade=table,
                                downgrade='op.drop_table("t")'),
               histories.script("w.py", "ab000000000w", "ab00000000a0", "a varchar made longer",
                                upgrade="op.alter_column('t', 'a', existing_type=sa.String(10), type_=sa.String(50))"),
               histories.script("n.py", "ab000000000n", "ab000000000w", "a table of its own, changed at once",
                                upgrade='op.create_table("own", sa.Column("id", sa.Integer, primary_key=True), '
                                        'sa.Column("x", sa.Integer)); op.drop_column("own", "x")')]
    parent = "ab000000000n"
    for name, upgrade, _ in steps:
        revision = f"ab0000000{name}"
        scripts.append(histories.script(f"{name}.py", revision, parent, f"pre {name}", upgrade=upgrade))
        parent = revision
    for name, upgrade, _ in steps:
        revision = f"ab000000p{name}"
        scripts.append(post(histories.script(f"p{name}.py", revision, parent, f"post {name}", upgrade=upgrade)))
        parent = revision
    root = histories.project_with(tmp_path / "project", scripts)
    payload = json.loads(run_lint(root, "--json", "--dialect", "postgresql").stdout)
    breaking = {f["revision"]: f["fix"] for f in payload["findings"] if f["rule"] == "breaks-running-release"}
    assert set(breaking) == {f"ab0000000{name}" for name, _, _ in steps}, breaking
    for name, _, what in steps:
        assert breaking[f"ab0000000{name}"].startswith(f"breaks the release still running: {what};"), breaking
        assert 'move it to a post-deploy revision (phase = "post")' in breaking[f"ab0000000{name}"]
    if payload["squawk"]:  # squawk's own words for the same drop: kept before, dropped after
        dropped = {f["revision"] for f in payload["findings"] if f["rule"] == "ban-drop-column"}
        assert "ab0000000a1" in dropped and "ab000000pa1" not in dropped, dropped
    mysql = json.loads(run_lint(root, "--json", "--dialect", "mysql").stdout)
    assert {f["revision"] for f in mysql["findings"] if f["rule"] == "breaks-running-release"} >= {
        "ab0000000a1", "ab0000000a2"}
