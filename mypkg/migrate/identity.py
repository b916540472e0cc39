"""The package's identity: every name the machinery shows or stores comes from here.

An adopter who takes this project for their own schema renames the package (see the
README, "Adopting mypkg"); everything below follows from the package's import name, so
the command, the environment variables, the ledger table, the lock key and the default
SQLite file follow too. For the name ``mypkg`` these are exactly the names earlier
releases used, so databases they migrated keep working.

Standard library only, and nothing imported: the fast path starts here.
"""

from __future__ import annotations

import os  # loaded by every interpreter at start-up: free

#: The import name of the package that ships the schema (``mypkg``).
PACKAGE = __name__.partition(".")[0]
#: The console command, and the prefix of every message it prints.
COMMAND = f"{PACKAGE}-migrate"
#: The distribution name, for ``importlib.metadata`` (pip normalises ``_`` to ``-``).
DISTRIBUTION = PACKAGE.replace("_", "-")
#: Prefix of the environment variables (``MYPKG_DATABASE_URL``, ``MYPKG_NO_FASTPATH``).
ENV_PREFIX = PACKAGE.upper()
DATABASE_URL_VAR = f"{ENV_PREFIX}_DATABASE_URL"
NO_FASTPATH_VAR = f"{ENV_PREFIX}_NO_FASTPATH"
#: A URL for migrations only, which wins over DATABASE_URL_VAR: a direct connection while
#: the application keeps a pooled one.
MIGRATION_URL_VAR = f"{ENV_PREFIX}_MIGRATION_URL"
#: Seconds to wait for a connection (the --connect-timeout option sets it too).
CONNECT_TIMEOUT_VAR = f"{ENV_PREFIX}_CONNECT_TIMEOUT"
#: SQLite: seconds to wait for another connection's lock (the --busy-timeout option sets it too).
BUSY_TIMEOUT_VAR = f"{ENV_PREFIX}_BUSY_TIMEOUT"
#: The format of stderr's lines: text, or json (the --log-format option wins).
LOG_FORMAT_VAR = f"{ENV_PREFIX}_LOG_FORMAT"
#: The ledger table the runner keeps beside Alembic's version table.
LEDGER_TABLE = f"{PACKAGE}_migration_ledger"
#: The lease a migration holds through a transaction pooler (``--lock lease``).
LEASE_TABLE = f"{PACKAGE}_migration_lock"
#: Which migration lock (``auto``, ``advisory``, ``lease``; the --lock option sets it too).
LOCK_MODE_VAR = f"{ENV_PREFIX}_LOCK"
#: Seconds a lease lasts unrenewed (the --lease option sets it too).
LEASE_SECONDS_VAR = f"{ENV_PREFIX}_LEASE"
#: PostgreSQL tenants: the schema of the database's extensions, on every tenant's search path
#: after the tenant's own (the --extensions-schema option sets it too; empty: none).
EXTENSIONS_SCHEMA_VAR = f"{ENV_PREFIX}_EXTENSIONS_SCHEMA"
#: Its default: where hosted PostgreSQL services (Supabase) keep them, never public's tables.
DEFAULT_EXTENSIONS_SCHEMA = "extensions"
#: Alembic's version table (Alembic's default name, as the scripts' authors see it).
VERSION_TABLE = "alembic_version"
#: A file in the working directory: nothing to start, nothing to configure.
DEFAULT_URL = f"sqlite:///{PACKAGE}.db"
#: The text hashed into the PostgreSQL advisory lock key (see :mod:`.locks`).
LOCK_NAME = COMMAND


def advisory_lock_key(schema: str | None) -> int:
    """PostgreSQL's advisory lock of one (database, schema): a stable signed 64-bit number
    derived from :data:`LOCK_NAME`, so every migrator of this package, of any version,
    contends for the same lock; tenants' schemas migrate side by side, each under its own."""
    import hashlib

    name = LOCK_NAME if schema is None else f"{LOCK_NAME}:schema:{schema}"
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


def sqlite_lock_file(database: str) -> str:
    """The sidecar file beside a SQLite database that its migrators lock (never the
    database file itself: see :mod:`.database.locks`)."""
    return f"{database}.{LOCK_NAME}.lock"
#: The folder name of the revision scripts inside the installed package.
BUNDLED_SCRIPTS = "migrations"
#: The installed package's folder (``<site-packages>/mypkg``), whatever depth a module
#: asking sits at: the bundled scripts, their manifest and the release map live there.
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: The entry-point group through which an installed distribution adds its own migrations
#: (a plugin: docs/plugins.md), and the file its wheel carries beside ``versions/``.
PLUGIN_GROUP = f"{PACKAGE}.migrations"
PLUGIN_MANIFEST = "manifest.json"
#: The build hook plugin authors name in their pyproject.toml (hatchling).
PLUGIN_BUILD_HOOK = f"{PACKAGE}-migrations"
#: Prefix of temporary files and schemas the machinery makes.
SCRATCH_PREFIX = f"{PACKAGE}_"

#: The ledger outcome of a data migration under way (:mod:`mypkg.batch`); read by the
#: runner and by the fast path, which needs no SQLAlchemy to see it.
BACKFILLING = "backfilling"
#: The ledger outcome of a background backfill not finished (:mod:`.data.queue`).
BACKGROUND = "background"
#: The ledger outcomes whose checksum is what the database last accepted for a revision:
#: it ran (applied), was recorded as run (stamped) or an operator accepted the shipped
#: script as it is now (realigned: ``repair --checksums``, Flyway's repair).
REALIGNED = "realigned"
CHECKSUM_OUTCOMES = ("applied", "stamped", REALIGNED)
#: The ledger outcome of a checkpoint installed into an empty database (its checksum: the
#: checkpoint's content), by the runner or the fast path.
CHECKPOINT_INSTALLED = "checkpoint"
