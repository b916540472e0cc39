"""Offline SQL (``--sql``) that fails part way: name the revision, keep what came before.

Alembic writes ``-- Running upgrade A -> B`` before it runs B's ``upgrade()`` (and
``-- Running downgrade B -> A`` before B's ``downgrade()``), so the last such line of the
output names the revision that failed, and everything before it is the complete SQL of
the revisions that rendered.
"""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING, Any, Literal

from ..database import connections, extensions, settings
from ..errors import MigrateError, UsageError
from ..history import checkpoints, graph, scripts

if TYPE_CHECKING:
    from collections.abc import Collection

    from sqlalchemy.engine import URL

_RUNNING = re.compile(r"^-- Running (upgrade|downgrade) (.*?) -> (.*?)\s*$", re.MULTILINE)


class OfflineSQLError(MigrateError):
    """A revision could not be rendered; :attr:`sql` holds the SQL of those before it."""

    def __init__(self, message: str, sql: str, revision: str | None = None, reason: str = "",
                 reads_database: bool = False) -> None:
        super().__init__(message)
        self.sql = sql
        self.revision = revision  #: the revision that could not be rendered, when known
        self.reason = reason  #: why, in one line
        #: It failed reading the database (offline there is none); else it cannot run at all.
        self.reads_database = reads_database


#: Offline, a revision's query goes to the output and ``execute`` returns None: reading its
#: result fails so. Inspecting the bind, or an ORM session on it, fails in these.
_READ_FAILURES = ("'NoneType' object has no attribute", "No inspection system is available",
                  # batch mode on SQLite reflects the table it rebuilds
                  "requires a live database connection",
                  # a project's own helper refusing it by name (neutron's create_table_if_not_exists)
                  "while in offline mode")
_READ_MODULES = ("sqlalchemy/orm/", "sqlalchemy/engine/reflection", "sqlalchemy/inspection")


def reads_database(exc: BaseException, revision_sql: str) -> bool:
    """Whether a failure while rendering comes from the revision reading the database
    (a query it sent, whose result offline mode cannot give), not from a revision that
    cannot run anywhere (a constraint its naming convention cannot name, a bad import)."""
    if re.search(r"^\s*SELECT\b", revision_sql, re.IGNORECASE | re.MULTILINE):
        return True
    if any(text in str(exc) for text in _READ_FAILURES):
        return True
    frames = []
    tb = exc.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame.f_code.co_filename.replace("\\", "/"))
        tb = tb.tb_next
    return any(module in frame for frame in frames[-6:] for module in _READ_MODULES)


def failure(exc: BaseException, output: str) -> OfflineSQLError:
    """The error for ``exc`` raised while rendering, given the output produced so far."""
    found = list(_RUNNING.finditer(output))
    reason = f"{connections.error_name(exc)}: {connections.first_line(exc)}"
    from ..history import graph

    lacking = graph.lacking_function(exc)
    if lacking is not None:  # before its marker: Alembic takes the function as it plans the steps
        reason = f"it defines no {str(exc).rsplit(chr(39), 2)[-2]}()"
        return OfflineSQLError(f"offline SQL failed in revision {lacking}: {reason}; the SQL of the revisions "
                               "before it was written to the output", output, lacking, reason)
    if not found:
        return OfflineSQLError(f"offline SQL failed before the first revision: {reason}", "", None, reason)
    last = found[-1]
    direction, lower, upper = last.groups()
    revision = upper if direction == "upgrade" else lower
    # The revision's own "BEGIN;" (one transaction per revision) comes just before it.
    start = last.start()
    before = output[:start]
    if before.rstrip().endswith("BEGIN;"):
        before = before.rstrip()[: -len("BEGIN;")]
    return OfflineSQLError(
        f"offline SQL failed in revision {revision.strip()}: {reason}; "
        "the SQL of the revisions before it was written to the output",
        before,
        revision.strip(),
        reason,
        reads_database(exc, output[last.end():]),
    )


def render(
    direction: Literal["upgrade", "downgrade"], revision_range: str, url: URL, schema: str | None = None,
    *, use_checkpoints: bool = True, applied: Collection[str] = (),
) -> str:
    """The SQL of ``direction`` over ``revision_range`` for ``url``'s dialect (nothing is
    connected); :func:`.commands.offline_sql` documents the promises. With a tenant's
    ``schema``, the SQL first goes there (:func:`tenant_preamble`).

    ``applied``: an upgrade to ``revision_range`` (its end alone) from a database holding
    these revisions, as many as there are branches (``FROM:`` names one).

    :raises UsageError: unknown revision, or a downgrade without ``FROM:``.
    :raises MigrateError: a script that cannot be rendered offline (:class:`OfflineSQLError`).
    """
    from alembic.util import CommandError

    from alembic import command

    if applied:
        return _render_upgrade_after(tuple(applied), revision_range, url)

    start, sep, end = revision_range.rpartition(":")
    if direction == "downgrade" and not sep:
        raise UsageError("downgrade --sql needs a range FROM:TO, e.g. head:base")
    for revision in (start, end):
        if revision:
            graph.require_revision(revision)
    _require_direction(direction, start or "base", end)
    buffer = io.StringIO()
    if schema is not None:
        buffer.write(tenant_preamble(url, schema, create=direction == "upgrade"))
    config = scripts.make_config(url=url)
    config.output_buffer = buffer
    found = _checkpoint(url, end) if direction == "upgrade" and start in ("", "base") and use_checkpoints else None
    if found is not None:  # from an empty database: the checkpoint, then what follows it
        _write_checkpoint(buffer, config, url, found)
        revision_range = f"{found.revision}:{end}"
    try:
        getattr(command, direction)(config, revision_range, sql=True)
    except CommandError as exc:
        if _RUNNING.search(buffer.getvalue()):  # raised by a revision's own operation (batch mode)
            raise failure(exc, buffer.getvalue()) from exc
        raise MigrateError(connections.first_line(exc)) from exc
    except Exception as exc:  # a script that needs a live database, or a plain bug
        raise failure(exc, buffer.getvalue()) from exc
    return _tenants_extensions(buffer.getvalue(), url, schema)


def _tenants_extensions(sql: str, url: URL, schema: str | None) -> str:
    """A PostgreSQL tenant's SQL with its ``CREATE EXTENSION`` in the shared extensions
    schema, as the online run places it (:mod:`.extensions`)."""
    shared = settings.extensions_schema()
    if schema is None or shared is None or url.get_backend_name() != "postgresql":
        return sql
    quoted = url.get_dialect()().identifier_preparer.quote_identifier(shared)
    return extensions.placed_in_script(sql, shared, quoted)


def _render_upgrade_after(applied: tuple[str, ...], end: str, url: URL) -> str:
    """``upgrade --sql`` from several revisions at once: Alembic's command takes one
    ``FROM``, its migration context any number (one per branch: a lint going on past a
    revision of neutron's contract branch must not walk its expand branch again)."""
    from alembic.runtime.environment import EnvironmentContext
    from alembic.script import ScriptDirectory

    buffer = io.StringIO()
    config = scripts.make_config(url=url)
    config.output_buffer = buffer
    directory = ScriptDirectory.from_config(config)

    def upgrade(rev: Any, _context: Any) -> Any:
        return directory._upgrade_revs(end, rev)

    try:
        with EnvironmentContext(config, directory, fn=upgrade, as_sql=True, starting_rev=list(applied),
                                destination_rev=end):
            directory.run_env()
    except Exception as exc:  # a script that needs a live database, or a plain bug
        raise failure(exc, buffer.getvalue()) from exc
    return buffer.getvalue()


def _checkpoint(url: URL, end: str) -> checkpoints.Checkpoint | None:
    """The checkpoint an upgrade from base to ``end`` starts with on ``url``'s dialect."""
    if graph.is_relative(end) or not checkpoints.shipped():
        return None
    heads = graph.heads() if end in ("head", "heads") else (graph.script(end).revision,)  # type: ignore[union-attr]
    return checkpoints.newest_within(graph.ancestors(heads), lambda rev: graph.ancestors((rev,)),
                                     url.get_backend_name())


def _write_checkpoint(buffer: io.StringIO, config: Any, url: URL, found: checkpoints.Checkpoint) -> None:
    from alembic import command

    from ..database import snapshot
    from .checkpoint import refuse_edited

    refuse_edited(found, "offline SQL")
    key = url.get_backend_name()
    transactional = key in ("sqlite", "postgresql")
    count = len(graph.ancestors((found.revision,)))
    buffer.write(f"-- checkpoint {found.revision}: the schema of {count} revisions in one step ({found.path.name})\n\n")
    buffer.write("BEGIN;\n\n" if transactional else "")
    buffer.write(snapshot.render(found.forms[key], key) + "\n")
    command.stamp(config, found.revision, sql=True)
    buffer.write("COMMIT;\n\n" if transactional else "")


def tenant_preamble(url: URL, schema: str, *, create: bool) -> str:
    """The statements that put a SQL script in a tenant's schema, as the online run does:
    created if missing (an upgrade), then the only place unqualified names resolve."""
    dialect = url.get_dialect()()
    quoted = dialect.identifier_preparer.quote_identifier(schema)
    if url.get_backend_name() == "postgresql":
        lines = [f"CREATE SCHEMA IF NOT EXISTS {quoted};"] if create else []
        lines.append(f"SET search_path TO {extensions.search_path(schema, dialect.identifier_preparer.quote_identifier)};")
    else:  # MySQL, MariaDB: a tenant is a database
        lines = [f"CREATE DATABASE IF NOT EXISTS {quoted};"] if create else []
        lines.append(f"USE {quoted};")
    return "\n".join(lines) + "\n\n"


def _require_direction(direction: str, start: str, end: str) -> None:
    """``upgrade --sql head:base`` printed nothing and exited 0; ``downgrade --sql base:head``
    printed Alembic's own complaint: a range that goes the other way is a usage error that
    names the command that renders it.

    :raises UsageError: ``start`` is not below ``end`` (upgrade) or above it (downgrade).
    """
    def ids(revision: str) -> tuple[str, ...] | None:
        if revision == "base":
            return ()
        if revision in ("head", "heads"):
            return graph.heads()
        found = graph.script(revision) if not graph.is_relative(revision) else None
        return (found.revision,) if found is not None else None  # relative: Alembic decides

    lower, upper = (ids(start), ids(end)) if direction == "upgrade" else (ids(end), ids(start))
    if lower is None or upper is None or set(lower) <= graph.ancestors(upper):
        return
    other = "downgrade" if direction == "upgrade" else "upgrade"
    raise UsageError(
        f"{direction} --sql {start}:{end} goes {'down' if direction == 'upgrade' else 'up'}: "
        f"for that SQL, run {other} --sql {start}:{end}"
    )
