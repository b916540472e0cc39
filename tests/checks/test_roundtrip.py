"""``roundtrip``: revisions that lose data in each way a schema test cannot see are caught with
their revision, table and column; the shipped history keeps every row on SQLite, PostgreSQL
and MariaDB (the generated rows satisfy its foreign key and unique constraint: no false
finding); a non-empty database is refused."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

import mypkg
from mypkg.testing import migration_roundtrip  # noqa: F401 - the fixture, as the pytest11 entry point loads it
from tests.conftest import Cli
from tests.history import histories
from tests.runtime.test_api import HEAD, REVISIONS

GADGET = "9a0000000001"
CHANGE = "9a0000000002"

#: A table of the test's own, then the revision under test changing it.
CREATE_GADGET = f'''\
"""create gadget

Revision ID: {GADGET}
Revises: {HEAD}
"""
import sqlalchemy as sa
from alembic import op

revision = "{GADGET}"
down_revision = "{HEAD}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("gadget", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("label", sa.String(200), nullable=False), sa.Column("weight", sa.Integer),
                    sa.Column("api_token", sa.String(40)))


def downgrade() -> None:
    op.drop_table("gadget")
'''


def change(upgrade: str, downgrade: str, *, marker: str = "") -> str:
    return f'''\
"""change gadget

Revision ID: {CHANGE}
Revises: {GADGET}
"""
import sqlalchemy as sa
from alembic import op

revision = "{CHANGE}"
down_revision = "{GADGET}"
branch_labels = None
depends_on = None
{marker}

def upgrade() -> None:
{upgrade}


def downgrade() -> None:
{downgrade}
'''


#: A rebuild, as batch mode does on SQLite, that copies every column but one.
REBUILD_LOSING_WEIGHT = change(
    '    op.execute("CREATE TABLE gadget_new (id INTEGER PRIMARY KEY, label VARCHAR(200) NOT NULL, weight INTEGER, "\n'
    '               "api_token VARCHAR(40))")\n'
    '    op.execute("INSERT INTO gadget_new (id, label, api_token) SELECT id, label, api_token FROM gadget")\n'
    '    op.drop_table("gadget")\n'
    '    op.rename_table("gadget_new", "gadget")',
    "    pass")
NARROWED_LABEL = change('    op.alter_column("gadget", "label", type_=sa.String(10), existing_type=sa.String(200))',
                        '    op.alter_column("gadget", "label", type_=sa.String(200), existing_type=sa.String(10))')
#: The upgrade moves weight into grams; the downgrade brings the column back, not its values.
MOVED_NOT_BROUGHT_BACK = change(
    '    op.add_column("gadget", sa.Column("grams", sa.Integer))\n'
    '    op.execute("UPDATE gadget SET grams = weight * 1000")\n'
    '    with op.batch_alter_table("gadget") as batch:\n'
    '        batch.drop_column("weight")',
    '    op.add_column("gadget", sa.Column("weight", sa.Integer))\n'
    '    with op.batch_alter_table("gadget") as batch:\n'
    '        batch.drop_column("grams")')
UPPER_CASED = ('    op.execute("UPDATE gadget SET label = upper(label)")\n'
               '    op.execute("UPDATE gadget SET weight = NULL")', "    pass")


def project(source_copy: Path, changing: str) -> Cli:
    versions = source_copy / "alembic" / "versions"
    (versions / f"9999_{GADGET}_create_gadget.py").write_text(CREATE_GADGET)
    (versions / f"9999_{CHANGE}_change_gadget.py").write_text(changing)
    return Cli(source_copy, {"PYTHONPATH": str(source_copy)})


def findings(done: object) -> list[tuple[str, str, str | None, str]]:
    payload = json.loads(done.stdout)  # type: ignore[attr-defined]
    return [(f["revision"], f["table"], f["column"], f["direction"]) for f in payload["findings"]]


def test_the_shipped_history_keeps_every_row_on_sqlite(cli: Cli) -> None:
    done = cli("roundtrip", "--rows", "30")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith(f"{len(REVISIONS)} revision(s) round-tripped on sqlite:///")
    assert done.stdout.splitlines()[-1].endswith(": every row kept")
    assert not list(cli.cwd.glob("*.db")), "the scratch database is a temporary file, not the working directory's"


@pytest.mark.parametrize("url", ["postgresql_url", "mysql_url"])
def test_the_shipped_history_keeps_every_row_on_servers(migration_roundtrip, url: str,  # noqa: F811
                                                        request: pytest.FixtureRequest) -> None:
    assert migration_roundtrip(request.getfixturevalue(url), rows=30) == []


def test_a_rebuild_that_forgets_a_column_is_caught(source_copy: Path) -> None:
    done = project(source_copy, REBUILD_LOSING_WEIGHT)("roundtrip", f"{HEAD}:head", "--json")
    assert done.returncode == 1, done.stderr
    # Lost by the upgrade, and so not there for the downgrade (which does nothing) to bring back.
    assert findings(done) == [(CHANGE, "gadget", "weight", "upgrade"), (CHANGE, "gadget", "weight", "downgrade")]
    found = json.loads(done.stdout)["findings"][0]
    assert found["rows"] == 16  # every row but each fifth, whose weight was generated NULL
    assert re.fullmatch(r"16 of 20 rows differ, e\.g\. 10000\d\d: \d+ -> None", found["example"]), found["example"]


@pytest.mark.parametrize(("url", "refusal"), [("postgresql_url", "value too long"),
                                             ("mysql_url", "Data truncated for column 'label'")])
def test_a_narrowing_type_change_is_caught_on_servers(source_copy: Path, request: pytest.FixtureRequest,
                                                      url: str, refusal: str) -> None:
    """PostgreSQL refuses the ALTER; MariaDB in strict mode (its default) refuses it the same way."""
    done = project(source_copy, NARROWED_LABEL)("--url", request.getfixturevalue(url), "roundtrip", f"{HEAD}:head",
                                                "--json")
    assert done.returncode == 1, done.stderr
    assert findings(done) == [(CHANGE, "gadget", "label", "upgrade")]
    assert refusal in json.loads(done.stdout)["findings"][0]["example"]


def test_a_downgrade_that_cannot_bring_back_what_its_upgrade_moved_is_caught(source_copy: Path) -> None:
    done = project(source_copy, MOVED_NOT_BROUGHT_BACK)("roundtrip", f"{HEAD}:head", "--json")
    assert done.returncode == 1, done.stderr
    assert findings(done) == [(CHANGE, "gadget", "weight", "downgrade")]


def test_an_update_is_caught_unless_declared_and_its_reversal_is_still_checked(source_copy: Path) -> None:
    done = project(source_copy, change(*UPPER_CASED))("roundtrip", f"{HEAD}:head", "--json")
    assert findings(done) == [(CHANGE, "gadget", "label", "upgrade"), (CHANGE, "gadget", "weight", "upgrade"),
                              (CHANGE, "gadget", "label", "downgrade"), (CHANGE, "gadget", "weight", "downgrade")]
    declared = change(*UPPER_CASED, marker='roundtrip_changes = {"gadget.label": "upper-cased on purpose"}\n')
    done = project(source_copy, declared)("roundtrip", f"{HEAD}:head", "--json")
    # The label only, the upgrade only: the weight it also cleared is still a finding.
    assert findings(done) == [(CHANGE, "gadget", "weight", "upgrade"),
                              (CHANGE, "gadget", "label", "downgrade"), (CHANGE, "gadget", "weight", "downgrade")]
    text = project(source_copy, declared)("roundtrip", f"{HEAD}:head")
    assert text.returncode == 1 and f"{CHANGE}  gadget.label  downgrade: 20 of 20 rows differ, e.g. 10000" in text.stdout


def test_a_database_that_is_not_empty_is_refused(cli: Cli, sqlite_url: str) -> None:
    mypkg.upgrade(sqlite_url)
    done = cli("--url", sqlite_url, "roundtrip")
    assert done.returncode == 2 and done.stdout == "" and done.stderr.count("\n") == 1, done.stderr
    assert "holds my_table, mypkg_migration_ledger, note" in done.stderr or "holds alembic_version" in done.stderr
    assert mypkg.current(sqlite_url) == (HEAD,)  # untouched


def test_the_report_tells_locks_and_rewrites_on_postgresql(source_copy: Path, postgresql_url: str) -> None:
    rewrite = change('    op.alter_column("gadget", "weight", type_=sa.BigInteger, existing_type=sa.Integer)',
                     '    op.alter_column("gadget", "weight", type_=sa.Integer, existing_type=sa.BigInteger)')
    done = project(source_copy, rewrite)("--url", postgresql_url, "roundtrip", "--report", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    steps = {step["revision"]: step for step in json.loads(done.stdout)["steps"]}
    assert steps[CHANGE]["locks"] == {"gadget": "AccessExclusiveLock"} and steps[CHANGE]["rewritten"] == ["gadget"]
    assert steps[REVISIONS[3]]["locks"]["my_table"] == "AccessExclusiveLock"  # widening a varchar...
    assert steps[REVISIONS[3]]["rewritten"] == []  # ...rewrites nothing
    assert steps[CHANGE]["rows"] == {"my_table": 20, "note": 20, "gadget": 20}
    engine = sa.create_engine(postgresql_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT count(*) FROM gadget")) == 20
    engine.dispose()


@pytest.mark.parametrize("name", sorted(histories.CORPUS))
def test_the_corpus_histories_keep_their_rows_but_one_seeds_downgrade(name: str, tmp_path: Path) -> None:
    """Merges, labelled branches, batch rebuilds, a data migration: every row kept, except where
    the seed revision's downgrade deletes every row (``DELETE FROM item``), not the two it added."""
    root = histories.project_with(tmp_path / "project", histories.CORPUS[name]())
    done = Cli(root, {"PYTHONPATH": str(root)})("roundtrip", "--json")
    expected = [("dd0000000002", "category", None, "downgrade"), ("dd0000000002", "item", None, "downgrade")] \
        if name == "naming_batch_data" else []
    assert findings(done) == expected, done.stdout + done.stderr
    assert done.returncode == (1 if expected else 0)
    notes = json.loads(done.stdout)["notes"]
    assert all("a merge" in note or "another branch grows from its parent" in note for note in notes)


def test_a_secret_looking_columns_values_are_never_shown(source_copy: Path) -> None:
    rotated = change('    op.execute("UPDATE gadget SET api_token = \'rotated\'")', "    pass")
    done = project(source_copy, rotated)("roundtrip", f"{HEAD}:head")
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stdout.splitlines() if "gadget.api_token" in line]
    assert [re.sub(r"e\.g\. \d+:", "e.g. N:", line) for line in lines] == [
        f"{CHANGE}  gadget.api_token  {move}: 20 of 20 rows differ, e.g. N: *** -> ***" for move in ("upgrade", "downgrade")]
    assert "rotated" not in done.stdout and "api_toke-" not in done.stdout


@pytest.mark.parametrize("tables", [1, 5, 6])
def test_the_refusal_names_up_to_five_tables(cli: Cli, tmp_path: Path, tables: int) -> None:
    path = tmp_path / "busy.db"
    with sqlite3.connect(path) as db:
        for number in range(tables):
            db.execute(f"CREATE TABLE t{number} (id INTEGER PRIMARY KEY)")
    done = cli("--url", f"sqlite:///{path}", "roundtrip")
    listed = ", ".join(f"t{number}" for number in range(min(tables, 5)))
    assert done.returncode == 2 and done.stderr == (
        f"mypkg-migrate: error: roundtrip fills and drops tables: sqlite:///{path} holds {listed}"
        f"{'...' if tables > 5 else ''}; give it an empty database\n")


def test_one_row_per_table_is_enough_and_none_is_a_usage_error() -> None:
    """One row: each foreign key's parent has a single row to point at."""
    assert mypkg.roundtrip(rows=1).findings == []
    with pytest.raises(mypkg.UsageError, match="--rows must be at least 1, not 0"):
        mypkg.roundtrip(rows=0)


def test_a_number_changed_across_a_type_change_is_caught_and_a_long_value_is_cut(source_copy: Path) -> None:
    """weight becomes a float and is halved (Decimal or int against float: compared as numbers);
    the label's long values (its whole declared length) are shown cut to 40 characters."""
    halved = change('    with op.batch_alter_table("gadget") as batch:\n'
                    '        batch.alter_column("weight", type_=sa.Float, existing_type=sa.Integer)\n'
                    '    op.execute("UPDATE gadget SET weight = weight / 2.0")\n'
                    '    op.execute("UPDATE gadget SET label = upper(label) WHERE length(label) > 100")',
                    "    pass")
    done = project(source_copy, halved)("roundtrip", f"{HEAD}:head", "--json")
    found = {(f["column"], f["direction"]): f for f in json.loads(done.stdout)["findings"]}
    assert ("weight", "upgrade") in found and ("label", "upgrade") in found, done.stdout + done.stderr
    example = found[("label", "upgrade")]["example"]
    before, after = example.split(": ", 1)[1].split(" -> ")
    assert re.fullmatch(r"'label-\d+x+\.\.\.", before) and re.fullmatch(r"'LABEL-\d+X+\.\.\.", after), example
    assert len(before) == len(after) == 40


def test_generated_numbers_fit_their_precision_on_postgresql(source_copy: Path, postgresql_url: str) -> None:
    priced = change('    op.create_table("price", sa.Column("id", sa.Integer, primary_key=True),\n'
                    '                    sa.Column("amount", sa.Numeric(3, 2), nullable=False))',
                    '    op.drop_table("price")')
    then = f'''\\
"""reprice

Revision ID: 9a0000000003
Revises: {CHANGE}
"""
revision = "9a0000000003"
down_revision = "{CHANGE}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
'''
    cli = project(source_copy, priced)
    (source_copy / "alembic" / "versions" / "9999_9a0000000003_reprice.py").write_text(then)
    done = cli("--url", postgresql_url, "roundtrip", f"{HEAD}:head", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["notes"] == []  # 9.99 at most: every generated price fitted


def test_the_text_report_names_the_rewritten_table(source_copy: Path, postgresql_url: str) -> None:
    rewrite = change('    op.alter_column("gadget", "weight", type_=sa.BigInteger, existing_type=sa.Integer)',
                     '    op.alter_column("gadget", "weight", type_=sa.Integer, existing_type=sa.BigInteger)')
    done = project(source_copy, rewrite)("--url", postgresql_url, "roundtrip", f"{GADGET}:head", "--report")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[:5] == [
        f"{CHANGE}  change gadget", "  rows:      gadget 20, my_table 20, note 20",
        done.stdout.splitlines()[2], "  locks:     gadget AccessExclusiveLock", "  rewritten: gadget"]


THIRD = "9a0000000003"


def test_a_finding_does_not_stop_the_walk_the_revisions_after_it_are_round_tripped(source_copy: Path) -> None:
    """Findings are per revision: a revision that fails with rows present is applied with its
    tables emptied, and the revisions after it still get their round-trip (and their own
    findings); progress is on stderr, one line per revision, in a log too."""
    fails_with_rows = change(
        '    bind = op.get_bind()\n'
        '    if bind.execute(sa.text("SELECT count(*) FROM gadget")).scalar():\n'
        '        raise RuntimeError("cannot convert existing gadgets")\n'
        '    op.add_column("gadget", sa.Column("colour", sa.String(10)))',
        '    with op.batch_alter_table("gadget") as batch:\n'
        '        batch.drop_column("colour")')
    cli = project(source_copy, fails_with_rows)
    third = (CREATE_GADGET.replace(GADGET, THIRD).replace(f'down_revision = "{HEAD}"', f'down_revision = "{CHANGE}"')
             .replace("create gadget", "upper-case labels")
             .replace('op.create_table("gadget", sa.Column("id", sa.Integer, primary_key=True),\n'
                      '                    sa.Column("label", sa.String(200), nullable=False), sa.Column("weight", sa.Integer),\n'
                      '                    sa.Column("api_token", sa.String(40)))',
                      'op.execute("UPDATE gadget SET label = upper(label)")')
             .replace('op.drop_table("gadget")', "pass"))
    (source_copy / "alembic" / "versions" / f"9999_{THIRD}_upper.py").write_text(third)
    done = cli("roundtrip", f"{HEAD}:head", "--json")
    assert done.returncode == 1, done.stderr
    assert findings(done) == [(CHANGE, "?", None, "upgrade"), (THIRD, "gadget", "label", "upgrade"),
                              (THIRD, "gadget", "label", "downgrade")]
    payload = json.loads(done.stdout)
    assert "cannot convert existing gadgets" in payload["findings"][0]["example"]
    assert [step["revision"] for step in payload["steps"]] == [GADGET, CHANGE, THIRD]
    assert f"{CHANGE}: applied with its tables emptied, to go on with the revisions after it" in payload["notes"]
    text = cli("roundtrip", f"{HEAD}:head")
    progress = [line for line in text.stderr.splitlines() if "round-tripping" in line]
    assert progress == [f"mypkg-migrate: round-tripping {rev} ({n} of 3)" for n, rev in enumerate((GADGET, CHANGE, THIRD), 1)]
    assert "3 revision(s) round-tripped" in text.stdout


@pytest.mark.parametrize("span", ["head:base", f"{HEAD}:base", f"{REVISIONS[-1]}:{REVISIONS[1]}", "heads:" + REVISIONS[2]])
def test_a_range_going_down_is_a_usage_error(cli: Cli, span: str) -> None:
    done = cli("roundtrip", span)
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"{span}: the range goes down; roundtrip walks up, oldest first" in line


JOB_STATES = '("QUEUED", "RUNNING", "DONE")'


@pytest.mark.parametrize("url", [None, "postgresql_url"])
def test_generated_rows_are_valid_for_enums_checks_and_jsonb_as_the_revisions_declare_them(
        tmp_path: Path, request: pytest.FixtureRequest, url: str | None) -> None:
    """Real histories: a non-native Enum (a plain VARCHAR in the database, no CHECK), an
    IN-list CHECK, a JSONB column (SQLite before 3.45 has no jsonb()), and a next revision
    that reads the rows through its own declared types (an ORM read fails with LookupError
    on any other string). No finding, no table left empty."""
    root = histories.project_with(tmp_path / "p", [
        histories.script("a.py", "e0000000000a", None, "jobs", f"""
            from sqlalchemy.dialects import sqlite
            op.create_table(
                "job",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("state", sa.Enum(*{JOB_STATES}, name="job_state", native_enum=False), nullable=False),
                sa.Column("kind", sa.String(20), nullable=False),
                sa.Column("doc", sa.JSON().with_variant(sqlite.JSONB(), "sqlite")),
                sa.CheckConstraint("kind IN ('import', 'export')", name="job_kind"),
            )
            """, 'op.drop_table("job")'),
        histories.script("b.py", "e0000000000b", "e0000000000a", "read jobs through their types", f"""
            job = sa.Table("job", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                           sa.Column("state", sa.Enum(*{JOB_STATES}, name="job_state", native_enum=False)),
                           sa.Column("doc", sa.JSON))
            for row in op.get_bind().execute(sa.select(job)).all():
                assert row.state in {JOB_STATES}, row.state
            op.add_column("job", sa.Column("note", sa.String(10)))
            """, """
            with op.batch_alter_table("job") as batch:
                batch.drop_column("note")
            """),
    ])
    cli = Cli(root, {"PYTHONPATH": str(root)})
    args = ("--url", request.getfixturevalue(url)) if url else ()
    done = cli(*args, "roundtrip", "--json", "--report")
    assert done.returncode == 0, done.stdout + done.stderr
    payload = json.loads(done.stdout)
    assert payload["findings"] == [] and payload["notes"] == [], payload
    assert [step["rows"].get("job") for step in payload["steps"]] == [None, 20]
    if url is None:
        assert sqlite3.sqlite_version_info < (3, 45)  # the world claimed: no jsonb() here


@pytest.mark.parametrize(("precision", "scale"), [(1, 0), (3, 2), (5, 5), (10, 0), (12, 3), (18, 6), (38, 10), (None, None)])
def test_every_generated_numeric_fits_its_precision_and_scale(precision: int | None, scale: int | None) -> None:
    """Numeric(p, s) holds p - s digits before the point and s after: every value the
    generator makes, for the row numbers a long round-trip reaches, fits (a value that does
    not is refused by PostgreSQL and MariaDB, a false finding)."""
    import decimal

    from mypkg.migrate.checks import rows

    column = sa.Column("amount", sa.Numeric(precision, scale))
    sa.Table("t", sa.MetaData(), column)
    whole_digits = (precision or 18) - (scale or 0)
    values = [rows.value(column, k) for k in (*range(1, 2000), 10**9 - 1, 10**9, 10**12 + 7, 2**40)]
    for found in values:
        assert isinstance(found, decimal.Decimal)
        sign, digits, exponent = found.as_tuple()
        fraction = max(-exponent, 0)
        assert fraction <= (scale or 0), (found, precision, scale)
        assert len(digits) - fraction <= max(whole_digits, 0) or found == found.to_integral() == 0, (found, precision, scale)
    assert len(set(values)) > 1  # they vary: unique constraints need it


def test_two_keys_to_one_parent_get_different_rows_as_a_no_self_reference_check_wants(tmp_path: Path) -> None:
    """prefect's block_document_reference refers to block_document twice (parent and
    reference) under ``CHECK (parent_id <> reference_id)``: both keys took the same parent
    row, every insert broke the CHECK, and the table stayed empty ("no rows could be
    generated") for the last six revisions of the history."""
    root = histories.project_with(tmp_path / "p", [
        histories.script("a.py", "f0000000000a", None, "documents and references", """
            op.create_table("document", sa.Column("id", sa.Integer, primary_key=True))
            op.create_table(
                "reference",
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("parent_id", sa.Integer, sa.ForeignKey("document.id"), nullable=False),
                sa.Column("reference_id", sa.Integer, sa.ForeignKey("document.id"), nullable=False),
                sa.CheckConstraint("parent_id <> reference_id", name="no_self_reference"),
            )
            """, 'op.drop_table("reference")\nop.drop_table("document")'),
        histories.script("b.py", "f0000000000b", "f0000000000a", "a note on references",
                         'op.add_column("reference", sa.Column("note", sa.String(10)))',
                         'with op.batch_alter_table("reference") as batch:\n    batch.drop_column("note")'),
    ])
    done = Cli(root, {"PYTHONPATH": str(root)})("roundtrip", "--json", "--report")
    assert done.returncode == 0, done.stdout + done.stderr
    payload = json.loads(done.stdout)
    assert payload["notes"] == [] and payload["findings"] == [], payload
    assert payload["steps"][-1]["rows"]["reference"] == 20
