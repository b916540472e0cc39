"""A column renamed, or its type changed, while two releases run: expand, then contract.

In a pre-deploy revision (docs/deploying.md)::

    from mypkg.phases import rename_column, undo_rename_column

    def upgrade() -> None:
        rename_column("note", "body", "content")

    def downgrade() -> None:
        undo_rename_column("note", "body", "content")

and in a post-deploy one (``phase = "post"``), once no node runs the old release::

    from mypkg.phases import complete_rename_column, undo_complete_rename_column

    def upgrade() -> None:
        complete_rename_column("note", "body", "content")

    def downgrade() -> None:
        undo_complete_rename_column("note", "body", "content")

Between the two, the table has both columns and triggers keep them in step: the old
release reads and writes ``body``, the new one ``content``, and each sees the other's
writes. The existing rows are copied in batches (:func:`mypkg.batch.backfill`: resumable,
each batch its own transaction). GitLab's ``rename_column_concurrently`` and
``change_column_type_concurrently``, on SQLite, PostgreSQL and MySQL/MariaDB.

A type change keeps the column's name for both releases (GitLab's way): a shadow column of
the new type is filled by trigger and backfill; the post-deploy step drops the old column
and gives the shadow its name. Both releases read the old type until then.

What they do not carry over: indexes, constraints and defaults of the old column (add
them to the new one in the pre-deploy revision; ``CREATE INDEX CONCURRENTLY`` on
PostgreSQL). During the transition both columns accept NULL (the new release's rows have
no old value before the trigger runs, and SQLite's triggers run after the NOT NULL
check); the post-deploy step makes the remaining column NOT NULL again if the old one
was, which the triggers' name records. A table needs a single-column primary key.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from .batch import DEFAULT_BATCH_SIZE, backfill
from .migrate.identity import PACKAGE

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = [
    "change_column_type", "complete_change_column_type", "complete_rename_column", "rename_column",
    "shadow_column", "undo_change_column_type", "undo_complete_change_column_type", "undo_complete_rename_column",
    "undo_rename_column",
]


def rename_column(table: str, old: str, new: str, *, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Pre-deploy: add ``new`` beside ``old`` (same type), keep them in step both ways by
    trigger, copy the existing rows in batches. Returns the rows copied."""
    column = _column(table, old)
    _expand(table, old, new, column["type"], column["nullable"], both_ways=True)
    return _copy(table, old, new, batch_size)


def undo_rename_column(table: str, old: str, new: str) -> None:
    """The downgrade of :func:`rename_column`: triggers and ``new`` dropped, ``old`` as it was."""
    nullable = _drop_triggers(table, old, new)
    _alter(table, lambda batch: batch.drop_column(new))
    if nullable is False:
        _set_not_null(table, old)


def complete_rename_column(table: str, old: str, new: str) -> None:
    """Post-deploy: the triggers and ``old`` dropped; ``new`` NOT NULL if ``old`` was."""
    nullable = _drop_triggers(table, old, new)
    _alter(table, lambda batch: batch.drop_column(old))
    if nullable is False:
        _set_not_null(table, new)


def undo_complete_rename_column(table: str, old: str, new: str, *, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """The downgrade of :func:`complete_rename_column`: ``old`` back beside ``new``, in
    step again (the old release may run again), its rows copied back."""
    column = _column(table, new)
    _expand(table, old, new, column["type"], column["nullable"], both_ways=True, added=old)
    return _copy(table, new, old, batch_size)


def shadow_column(column: str) -> str:
    """The name of a type change's column of the new type, until the post-deploy step
    gives it ``column``'s name (kept within 63 bytes, PostgreSQL's limit)."""
    name = f"{column}_{PACKAGE}_retyped"
    return name if len(name.encode()) <= 63 else f"{column[:40]}_{_digest(column)}_retyped"


def change_column_type(table: str, column: str, type_: sa.types.TypeEngine[Any], *,
                       batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """Pre-deploy: a shadow column of ``type_`` (:func:`shadow_column`), filled from
    ``column`` by trigger on every write and for the existing rows in batches (each value
    converted as the database converts on assignment). Returns the rows copied."""
    shadow = shadow_column(column)
    _expand(table, column, shadow, type_, _column(table, column)["nullable"], both_ways=False)
    return _copy(table, column, shadow, batch_size, type_)


def undo_change_column_type(table: str, column: str) -> None:
    """The downgrade of :func:`change_column_type`."""
    shadow = shadow_column(column)
    nullable = _drop_triggers(table, column, shadow)
    _alter(table, lambda batch: batch.drop_column(shadow))
    if nullable is False:
        _set_not_null(table, column)


def complete_change_column_type(table: str, column: str) -> None:
    """Post-deploy: the triggers and the old column dropped, the shadow renamed to
    ``column`` (NOT NULL if the old one was)."""
    shadow = shadow_column(column)
    if _is_mysql():
        _mysql_complete_change(table, column, shadow)
        return
    nullable = _drop_triggers(table, column, shadow)
    _alter(table, lambda batch: batch.drop_column(column))
    _rename(table, shadow, column)
    if nullable is False:
        _set_not_null(table, column)


def undo_complete_change_column_type(table: str, column: str, old_type: sa.types.TypeEngine[Any], *,
                                     batch_size: int = DEFAULT_BATCH_SIZE) -> int:
    """The downgrade of :func:`complete_change_column_type`: ``column`` becomes the shadow
    again and a column of ``old_type`` takes the name back, filled from it."""
    shadow = shadow_column(column)
    if not _has_column(table, shadow):  # a run stopped in its backfill did this already
        nullable = _column(table, column)["nullable"]
        if _is_mysql():  # one ALTER, as in complete_change_column_type
            added = f"ADD COLUMN {_quote(column)} {old_type.compile(dialect=_bind().dialect)} NULL"
            _mysql_alter(table, _mysql_change(table, column, shadow, True), added)
        else:
            _rename(table, column, shadow)
        _expand(table, column, shadow, old_type, nullable, both_ways=True, added=column, source=shadow)
    return _copy(table, shadow, column, batch_size, old_type)


# --- the machinery ------------------------------------------------------------------------


def _bind() -> Any:
    """The revision's connection. Offline (``--sql``, ``lint``) there is none to read the
    columns' types, NULLs and triggers from: said in words lint takes for a note."""
    from alembic import op

    if op.get_context().as_sql:
        raise RuntimeError(f"{PACKAGE}.phases reads the table's columns and triggers from the database: "
                           "it cannot be rendered while in offline mode (--sql, lint)")
    return op.get_bind()


def _column(table: str, name: str) -> dict[str, Any]:
    """The reflected column (type, nullability), read from the database the revision runs on.

    :raises LookupError: no such column: the message names it.
    """
    import sqlalchemy as sa

    found = next((c for c in sa.inspect(_bind()).get_columns(table) if c["name"] == name), None)
    if found is None:
        raise LookupError(f"table {table!r} has no column {name!r}")
    return found


def _alter(table: str, change: Any) -> None:
    """One change through Alembic's batch mode: ALTER on PostgreSQL and MySQL, the table
    rebuilt on SQLite (where the triggers were dropped first: a rebuild would lose them)."""
    from alembic import op

    with op.batch_alter_table(table) as batch:
        change(batch)


def _has_column(table: str, name: str) -> bool:
    import sqlalchemy as sa

    return any(c["name"] == name for c in sa.inspect(_bind()).get_columns(table))


def _expand(table: str, old: str, new: str, type_: Any, nullable: bool, *, both_ways: bool,
            added: str | None = None, source: str | None = None) -> None:
    """The added column (``new`` unless told) and the triggers, each only if missing: a run
    stopped in its backfill committed them (and on MySQL, where DDL commits at once, a
    run stopped between them left one), and two transitions may share a revision."""
    added = added or new
    if not _has_column(table, added):
        _add_beside(table, source or (old if added == new else new), added, type_, nullable)
    if not any(name.startswith(_trigger_base(table, old, new)) for name in _trigger_names(_bind(), table)):
        _create_triggers(table, old, new, both_ways=both_ways, nullable=nullable)


def _add_beside(table: str, source: str, added: str, type_: Any, nullable: bool) -> None:
    import sqlalchemy as sa

    _alter(table, lambda batch: batch.add_column(sa.Column(added, type_, nullable=True)))
    if not nullable:  # the other release's rows lack it until the trigger runs (after the check, on SQLite)
        _alter(table, lambda batch: batch.alter_column(source, existing_type=_column(table, source)["type"],
                                                       nullable=True))


def _is_mysql() -> bool:
    return _bind().dialect.name in ("mysql", "mariadb")


def _quote(name: str) -> str:
    return _bind().dialect.identifier_preparer.quote(name)


def _mysql_change(table: str, name: str, new_name: str, nullable: bool) -> str:
    """MySQL's CHANGE COLUMN clause: ``name`` renamed, its type restated."""
    type_sql = _column(table, name)["type"].compile(dialect=_bind().dialect)
    return f"CHANGE COLUMN {_quote(name)} {_quote(new_name)} {type_sql} {'NULL' if nullable else 'NOT NULL'}"


def _mysql_alter(table: str, *clauses: str) -> None:
    from alembic import op

    op.execute(f"ALTER TABLE {_quote(table)} {', '.join(clauses)}")


def _rename(table: str, name: str, new_name: str) -> None:
    column = _column(table, name)  # MySQL's CHANGE COLUMN restates the whole column
    _alter(table, lambda batch: batch.alter_column(name, new_column_name=new_name, existing_type=column["type"],
                                                   existing_nullable=column["nullable"]))


def _set_not_null(table: str, name: str) -> None:
    column = _column(table, name)
    _alter(table, lambda batch: batch.alter_column(name, existing_type=column["type"], nullable=False))


def _copy(table: str, source: str, target: str, batch_size: int, type_: Any = None) -> int:
    import sqlalchemy as sa

    value = sa.column(source) if type_ is None else sa.cast(sa.column(source), type_)
    where = sa.and_(sa.column(target).is_(None), sa.column(source).is_not(None))
    return backfill(table, {target: value}, where, batch_size)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:10]


def _trigger_base(table: str, source: str, target: str) -> str:
    """Every name of one transition's triggers starts so; the last letter after it records
    whether the old column was NOT NULL (``n``) or not (``y``): the post-deploy step
    restores it."""
    return f"{PACKAGE}_sync_{_digest(table, source, target)}_"


def _create_triggers(table: str, old: str, new: str, *, both_ways: bool, nullable: bool) -> None:
    """Triggers that keep ``new`` equal to ``old`` on every insert and update (and ``old``
    to ``new`` when ``both_ways``: a rename, where each release writes its own)."""
    from alembic import op

    bind = _bind()
    quote = bind.dialect.identifier_preparer.quote
    name = _trigger_base(table, old, new) + ("y" if nullable else "n")
    t, o, n = quote(table), quote(old), quote(new)
    dialect = bind.dialect.name
    if dialect not in ("postgresql", "mysql", "mariadb", "sqlite"):
        raise NotImplementedError(f"{PACKAGE}.phases: no triggers for {dialect} (SQLite, PostgreSQL, MySQL/MariaDB)")
    if dialect == "postgresql":
        back_insert = f"IF NEW.{o} IS NULL THEN NEW.{o} = NEW.{n}; END IF;" if both_ways else ""
        back_update = f"ELSIF NEW.{n} IS DISTINCT FROM OLD.{n} THEN NEW.{o} = NEW.{n};" if both_ways else ""
        op.execute(
            f"CREATE FUNCTION {quote(name)}() RETURNS trigger LANGUAGE plpgsql AS $body$ BEGIN "
            f"IF TG_OP = 'INSERT' THEN IF NEW.{n} IS NULL THEN NEW.{n} = NEW.{o}; END IF; {back_insert} "
            f"ELSIF NEW.{o} IS DISTINCT FROM OLD.{o} THEN NEW.{n} = NEW.{o}; {back_update} END IF; "
            "RETURN NEW; END $body$")
        op.execute(f"CREATE TRIGGER {quote(name)} BEFORE INSERT OR UPDATE ON {t} "
                   f"FOR EACH ROW EXECUTE FUNCTION {quote(name)}()")
    elif dialect in ("mysql", "mariadb"):
        back_insert = f"IF NEW.{o} IS NULL THEN SET NEW.{o} = NEW.{n}; END IF;" if both_ways else ""
        back_update = f"ELSEIF NOT (NEW.{n} <=> OLD.{n}) THEN SET NEW.{o} = NEW.{n};" if both_ways else ""
        op.execute(f"CREATE TRIGGER {quote(name + 'i')} BEFORE INSERT ON {t} FOR EACH ROW BEGIN "
                   f"IF NEW.{n} IS NULL THEN SET NEW.{n} = NEW.{o}; END IF; {back_insert} END")
        op.execute(f"CREATE TRIGGER {quote(name + 'u')} BEFORE UPDATE ON {t} FOR EACH ROW BEGIN "
                   f"IF NOT (NEW.{o} <=> OLD.{o}) THEN SET NEW.{n} = NEW.{o}; {back_update} END IF; END")
    else:  # SQLite's triggers cannot change the row being written: they update it after.
        # Recursive triggers are off by default; each UPDATE stops once both agree.
        key = "rowid = NEW.rowid"
        both = f"{n} = COALESCE({n}, NEW.{o}), {o} = COALESCE({o}, NEW.{n})" if both_ways else f"{n} = NEW.{o}"
        op.execute(f"CREATE TRIGGER {quote(name + 'i')} AFTER INSERT ON {t} FOR EACH ROW BEGIN "
                   f"UPDATE {t} SET {both} WHERE {key}; END")
        op.execute(f"CREATE TRIGGER {quote(name + 'o')} AFTER UPDATE OF {o} ON {t} FOR EACH ROW "
                   f"WHEN NEW.{o} IS NOT OLD.{o} BEGIN UPDATE {t} SET {n} = NEW.{o} WHERE {key}; END")
        if both_ways:
            op.execute(f"CREATE TRIGGER {quote(name + 'n')} AFTER UPDATE OF {n} ON {t} FOR EACH ROW "
                       f"WHEN NEW.{n} IS NOT OLD.{n} AND NEW.{o} IS OLD.{o} "
                       f"BEGIN UPDATE {t} SET {o} = NEW.{n} WHERE {key}; END")


def _mysql_complete_change(table: str, column: str, shadow: str) -> None:
    """MySQL commits each statement: between dropping the triggers and the ALTER that gives
    the shadow the column's name, the new release's rows would get no shadow value, lost in
    the rename (and with the ALTER first, the triggers would name a column no longer there).
    The table is write-locked for those statements: the application waits, never fails."""
    from alembic import op

    found, nullable = _triggers_of(table, column, shadow)
    change = _mysql_change(table, shadow, column, nullable is not False)
    q = _quote
    op.execute(f"LOCK TABLES {q(table)} WRITE")
    try:
        for name in found:
            op.execute(f"DROP TRIGGER {q(name)}")
        op.execute(f"UPDATE {q(table)} SET {q(shadow)} = {q(column)} WHERE {q(shadow)} IS NULL AND {q(column)} IS NOT NULL")
        _mysql_alter(table, f"DROP COLUMN {q(column)}", change)
    finally:
        op.execute("UNLOCK TABLES")


def _triggers_of(table: str, old: str, new: str) -> tuple[list[str], bool | None]:
    """One transition's triggers, and whether the old column accepted NULL before it began
    (None: no trigger found, nothing recorded)."""
    base = _trigger_base(table, old, new)
    found = [name for name in _trigger_names(_bind(), table) if name.startswith(base)]
    return found, (found[0][len(base)] == "y" if found else None)


def _drop_triggers(table: str, old: str, new: str) -> bool | None:
    """Drop one transition's triggers; returns what :func:`_triggers_of` says of NULLs."""
    from alembic import op

    bind = _bind()
    quote = bind.dialect.identifier_preparer.quote
    found, nullable = _triggers_of(table, old, new)
    for name in found:
        op.execute(f"DROP TRIGGER {quote(name)}" + (f" ON {quote(table)}" if bind.dialect.name == "postgresql" else ""))
    if bind.dialect.name == "postgresql":  # each trigger's function, of the same name
        for name in found:
            op.execute(f"DROP FUNCTION IF EXISTS {quote(name)}()")
    return nullable


def _trigger_names(bind: Any, table: str) -> list[str]:
    from sqlalchemy import text

    dialect = bind.dialect.name
    if dialect == "postgresql":
        sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgrelid = to_regclass(quote_ident(:t))"
    elif dialect in ("mysql", "mariadb"):
        sql = ("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS "
               "WHERE EVENT_OBJECT_SCHEMA = DATABASE() AND EVENT_OBJECT_TABLE = :t")
    else:
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"
    return sorted(row[0] for row in bind.execute(text(sql), {"t": table}))
