"""Alembic's environment, run by both ``alembic`` (authors, from a source checkout) and
``mypkg-migrate`` (operators, from an install): ``alembic/env.py`` only calls
:func:`run_migrations`, so both commands run the scripts with one configuration.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..database import connections, settings
from ..database.ledger import include_name
from ..errors import MigrateError
from ..identity import COMMAND

if TYPE_CHECKING:
    import sqlalchemy as sa
    from alembic.config import Config


def target_metadata(config: Config) -> sa.MetaData:
    """The models' MetaData, for autogenerate and comparisons.

    The runner says when it only applies revisions (``with_models=False``): then the
    ORM is not imported (a sizeable part of every run's start) and an empty MetaData
    with the models' naming convention stands in. Alembic names every constraint a
    script leaves unnamed from this MetaData's convention, so the scripts build the
    same constraint names under ``alembic`` and under the runner.
    """
    if config.attributes.get("with_models", True) is False:
        import sqlalchemy as sa

        from ...naming import NAMING_CONVENTION

        return sa.MetaData(naming_convention=NAMING_CONVENTION)
    from ...models import metadata

    require_one_convention(metadata)
    return metadata


def _convention_mismatch() -> type[MigrateError]:
    """Our error and Alembic's at once, so ``alembic`` prints it as its own FAILED line;
    built on first use, because importing Alembic is for the paths that run it."""
    from alembic.util import CommandError

    return type("ConventionMismatch", (MigrateError, CommandError), {})


def require_models_convention() -> None:
    """For the runner, which does not import the models: the same refusal as
    :func:`require_one_convention`, read from the models' source (:mod:`..history.conventions`).

    :raises MigrateError: a ``MetaData`` of the models names constraints by another convention.
    """
    from ...naming import NAMING_CONVENTION
    from ..history.conventions import require_models_convention as require

    require(NAMING_CONVENTION)


def require_one_convention(metadata: sa.MetaData) -> None:
    """The runner names constraints from ``naming.py`` (it does not import the models);
    ``alembic`` from the models' MetaData. They must be one convention, or the two commands
    build different constraint names from the same scripts, silently.

    :raises MigrateError: (an Alembic ``CommandError`` too, so ``alembic`` prints it as its
        own failure) the models' MetaData has another convention.
    """
    import sqlalchemy as sa

    from ...naming import NAMING_CONVENTION

    expected = dict(sa.MetaData(naming_convention=NAMING_CONVENTION).naming_convention)
    if dict(metadata.naming_convention) != expected:
        differ = sorted(k for k in set(expected) | set(metadata.naming_convention)
                        if expected.get(k) != metadata.naming_convention.get(k))
        from ..history.conventions import mismatch_message

        raise _convention_mismatch()(mismatch_message(differ))


def migration_options(config: Config) -> dict[str, Any]:
    """What every run shares, online and offline."""
    return {
        "include_name": include_name,
        "target_metadata": target_metadata(config),
        # One transaction per revision: a failure keeps every revision before it.
        "transaction_per_migration": True,
        # Autogenerate writes SQLite-safe batch operations for ALTERs.
        "render_as_batch": True,
        # What `check` and autogenerate compare: types yes; server defaults no
        # (known false positives across dialects).
        "compare_type": True,
        "compare_server_default": False,
    }


def database_url(config: Config) -> Any:
    """The URL the runner hands in, else $MYPKG_DATABASE_URL, alembic.ini, the default."""
    handed_in = config.attributes.get("url")
    if handed_in is not None:
        return handed_in
    text = settings.resolve_url_string(None, config.get_main_option("sqlalchemy.url"))
    return settings.parse_url(text)


def check_sqlite_foreign_keys(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
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


def _offline(context: Any, config: Config) -> None:
    """Write the SQL to the output instead of running it (``--sql``)."""
    context.configure(
        url=database_url(config),
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **migration_options(config),
    )
    _plugins_named_their_way(context)
    with context.begin_transaction():
        context.run_migrations()


def _plugins_named_their_way(context: Any) -> None:
    from ..history.manifest import load

    if load().plugins:
        from .plugin_naming import per_plugin

        per_plugin(context.get_context())


def _ledger_writer(connection: Any) -> Any:
    """For the ``alembic`` command: an ``on_version_apply`` hook that writes the ledger row
    inside each revision's transaction, as the runner does, so the ledger stays true
    whoever migrated (``history --applied`` after ``alembic downgrade -1``)."""
    from ..database import ledger
    from . import integrity

    ledger.ensure(connection)  # commits: nothing may stay open before configure()
    started = [ledger.now()]

    def write(ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        script = ctx.script.get_revision(step.up_revision_id) if ctx.script is not None else None
        ledger.write(
            connection,
            revision=step.up_revision_id,
            direction="upgrade" if step.is_upgrade else "downgrade",
            checksum=integrity.file_checksum(script.path) if script is not None else None,
            started_at=started[0],
            outcome="applied" if step.is_upgrade else "reverted",
            detail="alembic command",
        )
        ledger.clear_backfills(connection, step.up_revision_id)
        started[0] = ledger.now()

    return write


def _alembic_command(config: Config) -> str | None:
    """The ``alembic`` subcommand running, if any. ``cmd_opts`` is set by Alembic's own
    command line only: not by the runner, which writes its ledger rows itself, nor by
    test harnesses such as pytest-alembic."""
    command = getattr(config.cmd_opts, "cmd", None)
    return getattr(command[0], "__name__", None) if command else None


def _see_plugins(context: Any, config: Config) -> None:
    """``alembic`` from the source tree reads alembic.ini, which names the package's own
    ``versions/`` only: the installed plugins' folders are added here, before Alembic
    loads the graph (it loads it lazily), so it knows the revisions their tables are at.
    The runner's configuration (:func:`.scripts.make_config`) names them already."""
    from ..history.manifest import load

    shipped = load()
    script = context.script
    if not shipped.plugins or config.get_main_option("version_locations") or script is None:
        return
    from alembic.script.revision import RevisionMap

    script.version_locations = [os.path.join(script.dir, "versions"), *(p.versions for p in shipped.plugins)]
    script.__dict__.pop("_version_locations", None)  # memoized from alembic.ini's one folder
    script.revision_map = RevisionMap(script._load_revisions)


def _core_head(shipped_heads: tuple[str, ...]) -> Any:
    """``alembic revision --autogenerate`` bases a new revision on "head": with plugins
    installed that names several heads, so the package's own is meant (a plugin's
    revisions are written in the plugin)."""

    def process(context: Any, revision: Any, directives: list[Any]) -> None:
        for script in directives:
            # None is the command's default: "head".
            if getattr(script, "head", None) in (None, "head") and len(shipped_heads) == 1:
                script.head = shipped_heads[0]

    return process


def _run_with(context: Any, config: Config, connection: Any) -> None:
    callbacks = [check_sqlite_foreign_keys, *config.attributes.get("on_version_apply", ())]
    options = migration_options(config)  # refuses models of another convention before anything is written
    if _alembic_command(config) in ("upgrade", "downgrade"):
        callbacks.append(_ledger_writer(connection))
    # A tenant's version table by its qualified name (Alembic's cookbook): one index probe,
    # where an unqualified lookup checks every schema holding one.
    from ..history.manifest import load

    core_head = {"process_revision_directives": _core_head(load().core_heads())} if load().plugins else {}
    context.configure(connection=connection, on_version_apply=callbacks, **core_head,
                      version_table_schema=connections.tenant_schema(connection), **options)
    _plugins_named_their_way(context)
    if _alembic_command(config) == "upgrade":
        _refuse_retired_replay(context)
    with context.begin_transaction():
        context.run_migrations()


def _refuse_retired_replay(context: Any) -> None:
    """``alembic upgrade`` on an empty database, once scripts were retired into a
    checkpoint, would run the checkpoint revision alone on nothing: refused, naming the
    command that installs the checkpoint."""
    from alembic.util import CommandError

    from ..history import checkpoints

    retired = checkpoints.retired()
    if retired and not context.get_context().get_current_heads():
        replaced = next(iter(retired.values()))
        raise CommandError(
            f"the scripts before {replaced.revision} were retired into its checkpoint: build an empty "
            f"database with {COMMAND} upgrade (it installs the checkpoint), then use alembic on it"
        )


def _online(context: Any, config: Config) -> None:
    import sqlalchemy as sa

    # The runner hands in a Connection it owns; pytest-alembic may hand in an Engine.
    handed_in = config.attributes.get("connection")
    if isinstance(handed_in, sa.Connection):
        _run_with(context, config, handed_in)
        return
    engine = handed_in or connections.create_engine(database_url(config), for_migrations=True)
    try:
        with engine.connect() as connection:
            _run_with(context, config, connection)
    finally:
        if handed_in is None:
            engine.dispose()


def run_migrations() -> None:
    """The body of ``env.py``."""
    from alembic import context

    config = context.config
    # Only the `alembic` command has an ini file; the runner sets up its own logging.
    if config.config_file_name is not None and not config.attributes.get("connection"):
        from logging.config import fileConfig  # here: the runner's start-up skips it

        fileConfig(config.config_file_name, disable_existing_loggers=False)
        _see_plugins(context, config)
    if context.is_offline_mode():
        _offline(context, config)
    elif config.attributes.get("connection") is None:
        from ..database.bridge import for_async_drivers

        # Plain `alembic upgrade` on an asyncio application's postgresql+asyncpg:// URL:
        # its migrations run in the greenlet bridge, as the runner's do.
        for_async_drivers(lambda _url: _online(context, config))(database_url(config))
    else:
        _online(context, config)
