"""DDL compared in a canonical form (mypkg/migrate/checks/canonical.py) and the lines a
checkpoint's proof prints (checks/checkpoint.py ``compare``): the same schema written in
another constraint order is equal; every real difference is one line that shows it."""

from __future__ import annotations

import pytest

from mypkg.migrate.checks import canonical
from mypkg.migrate.checks.checkpoint import compare

TABLE = ('CREATE TABLE "t" (\n\tid INTEGER NOT NULL, \n\tname VARCHAR(10) DEFAULT \'a, (b)\' NOT NULL, \n'
         '\tCONSTRAINT pk_t PRIMARY KEY (id), \n\tCONSTRAINT uq_t_name UNIQUE (name), \n'
         "\tCONSTRAINT ck_t_x CHECK (name IN ('x', 'y'))\n)")


def test_a_table_with_its_constraints_in_another_order_is_the_same() -> None:
    reordered = ('CREATE TABLE "t" (id INTEGER NOT NULL, name VARCHAR(10) DEFAULT \'a, (b)\' NOT NULL, '
                 "CONSTRAINT ck_t_x CHECK (name IN ('x', 'y')), CONSTRAINT uq_t_name UNIQUE (name), "
                 "CONSTRAINT pk_t PRIMARY KEY (id))")
    assert canonical.statement(TABLE) == canonical.statement(reordered)
    # Its columns' order is part of the schema; a quoted comma or parenthesis splits nothing.
    swapped = reordered.replace("id INTEGER NOT NULL, name VARCHAR(10) DEFAULT 'a, (b)' NOT NULL",
                                "name VARCHAR(10) DEFAULT 'a, (b)' NOT NULL, id INTEGER NOT NULL")
    assert canonical.statement(TABLE) != canonical.statement(swapped)
    assert "DEFAULT 'a, (b)' NOT NULL" in canonical.statement(TABLE)
    # Whitespace inside a literal is kept; outside it is one space.
    assert canonical.statement("CREATE  INDEX ix ON t (name)  WHERE name = 'a  b'") == \
        "CREATE INDEX ix ON t (name) WHERE name = 'a  b'"


@pytest.mark.parametrize(("text", "key"), [
    (TABLE, "TABLE t"),
    ("CREATE UNIQUE INDEX ix_t_name ON t (name)", "INDEX ix_t_name"),
    ("CREATE TABLE IF NOT EXISTS `My_Table` (id INT)", "TABLE my_table"),
    ("CREATE VIEW v AS SELECT 1", "VIEW v"),
    ("ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (id)",
     "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES u (id)"),
])
def test_a_statement_is_keyed_by_what_it_creates(text: str, key: str) -> None:
    assert canonical.key(text) == key


def test_an_excerpt_cuts_both_texts_just_before_they_differ() -> None:
    long = "x" * 200 + "VARCHAR(100)" + "y" * 200
    a, b = canonical.excerpt(long, long.replace("VARCHAR(100)", "VARCHAR(10)"))
    assert a.startswith("…") and a.endswith("…") and "VARCHAR(100)" in a
    assert b.startswith("…") and "VARCHAR(10)y" in b
    assert a.index("VARCHAR") == b.index("VARCHAR") <= 31  # a third of the width before the difference
    # Short texts are shown whole: no mark at either end.
    assert canonical.excerpt("CREATE TABLE a (x INT)", "CREATE TABLE a (y INT)") == (
        "CREATE TABLE a (x INT)", "CREATE TABLE a (y INT)")
    # A text that ends exactly where the cut ends gets no mark either.
    exact = "z" * 90
    assert canonical.excerpt(exact, "z" * 10 + "q" + "z" * 79) == (exact, "z" * 10 + "q" + "z" * 79)


def form(statements: list[str], rows: list[dict] | None = None, sequences: list[dict] | None = None) -> dict:
    return {"statements": statements, "after": [], "rows": rows or [], "sequences": sequences or []}


def test_each_difference_of_two_forms_is_one_line_that_names_it() -> None:
    index = "CREATE INDEX ix_t_name ON t (name)"
    assert compare(form([TABLE, index]), form([index, TABLE])) == []  # another order: no difference
    assert compare(form([TABLE, index]), form([TABLE])) == [
        f"statements, INDEX ix_t_name: expected {index}, found none"]
    assert compare(form([TABLE]), form([TABLE, index])) == [
        f"statements, INDEX ix_t_name: not expected, found {index}"]
    rows = [{"table": "t", "columns": ["id"], "values": [[1], [2]]}]
    assert compare(form([TABLE], rows), form([TABLE], [{**rows[0], "values": [[1]]}])) == [
        "rows of t: expected 2, found 1 (or their values differ)"]
    sequences = [{"name": "t_id_seq", "value": 3}]
    assert compare(form([TABLE], sequences=sequences), form([TABLE])) == [
        "sequences: expected [{'name': 't_id_seq', 'value': 3}], found []"]
