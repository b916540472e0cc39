"""Alembic's environment for mypkg: shipped inside the package, run by both
``alembic`` (from a source checkout) and ``mypkg-migrate`` (from an install)."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from mypkg import database, settings
from mypkg.ledger import RUNNER_TABLES

config = context.config

# Only the `alembic` command has an ini file; mypkg-migrate sets up its own logging.
if config.config_file_name is not None and not config.attributes.get("connection"):
    from logging.config import fileConfig  # here: mypkg-migrate's start-up skips it

    fileConfig(config.config_file_name, disable_existing_loggers=False)


def include_name(name, type_, parent_names) -> bool:  # noqa: ANN001
    """Leave the runner's own tables (version table, ledger) out of every comparison."""
    return not (type_ == "table" and name in RUNNER_TABLES)


def target_metadata():  # noqa: ANN201
    """The models' MetaData, for autogenerate and comparisons.

    mypkg's runner says when it only applies revisions (``with_models=False``): then
    the ORM is not imported at all, which saves a sizeable part of every run's start.
    """
    if config.attributes.get("with_models", True) is False:
        return None
    from mypkg.models import metadata

    return metadata


# What every run shares, online and offline.
MIGRATION_OPTIONS = {
    "include_name": include_name,
    "target_metadata": target_metadata(),
    # One transaction per revision: a failure keeps every revision before it.
    "transaction_per_migration": True,
    # Autogenerate writes SQLite-safe batch operations for ALTERs.
    "render_as_batch": True,
    # What `mypkg-migrate check` and autogenerate compare: types yes; server
    # defaults no (known false positives across dialects).
    "compare_type": True,
    "compare_server_default": False,
}


def database_url():  # noqa: ANN201
    """The URL mypkg-migrate hands in, else $MYPKG_DATABASE_URL, alembic.ini, the default."""
    handed_in = config.attributes.get("url")
    if handed_in is not None:
        return handed_in
    text = settings.resolve_url_string(None, config.get_main_option("sqlalchemy.url"))
    return settings.parse_url(text)


def check_sqlite_foreign_keys(ctx, step, heads, run_args) -> None:  # noqa: ANN001
    """Migrations run with SQLite's foreign keys off (batch mode recreates tables);
    refuse to commit a revision that left a dangling reference."""
    connection = ctx.connection
    if connection is None or connection.dialect.name != "sqlite":
        return
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        table, rowid, parent, _ = problems[0]
        raise RuntimeError(
            f"foreign key check failed: {len(problems)} row(s), e.g. {table} rowid {rowid} "
            f"references a missing {parent} row"
        )


def run_migrations_offline() -> None:
    """Write the SQL to the output instead of running it (``--sql``)."""
    context.configure(
        url=database_url(),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **MIGRATION_OPTIONS,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_with(connection) -> None:  # noqa: ANN001
    callbacks = [check_sqlite_foreign_keys, *config.attributes.get("on_version_apply", ())]
    context.configure(connection=connection, on_version_apply=callbacks, **MIGRATION_OPTIONS)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # mypkg's API hands in a Connection it owns; pytest-alembic may hand in an Engine.
    handed_in = config.attributes.get("connection")
    if isinstance(handed_in, sa.Connection):
        run_with(handed_in)
        return
    engine = handed_in or database.create_engine(database_url(), for_migrations=True)
    try:
        with engine.connect() as connection:
            run_with(connection)
    finally:
        if handed_in is None:
            engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
