"""Writing a checkpoint, and proving one equal to the replay it replaces.

``checkpoint REV`` replays the history up to REV into empty scratch places (a temporary
SQLite file always; a temporary schema or database on each server named with
``--replay-on URL``), captures each (:mod:`..database.snapshot`) and writes the file.
:func:`differences` replays again, installs the checkpoint into a second scratch place
and compares the three: the file against the replay (a hand edit, or a history changed
since), and the installed schema against the replay (the install itself). ``checkpoint --prove``
runs it on SQLite for every checkpoint (the author's CI); the suite on PostgreSQL and
MariaDB too. The wheel build only checks the recorded sums (it cannot run revisions).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..database import bridge, connections, settings, tenants
from ..database.target import resolve
from ..errors import MigrateError, UsageError
from ..history import checkpoints, graph
from . import canonical
from ..identity import COMMAND, SCRATCH_PREFIX
from ..runtime import runner

if TYPE_CHECKING:
    from ..database.target import Database


def _replay(db: Database, revision: str, *, use_checkpoints: bool) -> dict[str, Any]:
    from ..database import snapshot

    runner.run("upgrade", db, revision, on_applied=None, lock_timeout=60, statement_lock_timeout=None,
               on_wait=None, use_checkpoints=use_checkpoints)
    with connections.connect(db, will_write=False) as connection:
        return snapshot.capture(connection)


@contextlib.contextmanager
def scratch(url: str | None, purpose: str = "checkpoint") -> Iterator[Database]:
    """An empty place of ``url``'s dialect, removed afterwards: a temporary SQLite file
    (``url`` None), else a new schema (PostgreSQL) or database (MySQL) on its server, named
    for its ``purpose``."""
    import tempfile
    import uuid

    if url is None:
        with tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{purpose}-") as tmp:
            yield resolve(f"sqlite:///{Path(tmp) / 'scratch.db'}")
        return
    name = f"{SCRATCH_PREFIX}{purpose}_{uuid.uuid4().hex[:12]}"
    db = resolve(settings.with_schema(url, name))
    try:
        tenants.create_database(db)  # MySQL: connectable at once (PostgreSQL's schema comes with the upgrade)
        yield db
    finally:
        _drop(db, name)


def _drop(db: Database, name: str) -> None:
    server = resolve(url_without_schema(db))
    with contextlib.suppress(Exception), connections.connect(server, will_write=True) as connection:
        if db.is_postgresql:
            connection.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        else:
            connection.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
        connection.commit()


def url_without_schema(db: Database) -> str:
    url = db.url.difference_update_query(["schema"])
    if db.is_mysql:  # the tenant's database: its server's default instead
        url = url.set(database=None)
    return url.render_as_string(hide_password=False)


def checkpoint(revision: str, replay_on: Sequence[str] = (), *, retire: bool = False) -> str:
    """In a source tree: write ``alembic/checkpoints/<REV>.json`` from a replay of the
    history up to ``revision`` on SQLite and on each server of ``replay_on`` (into a
    scratch schema or database, dropped afterwards); with ``retire``, instead remove the
    scripts before an existing checkpoint (:mod:`.retire`). Returns the file written.

    :raises UsageError: not a checkout, not one revision.
    :raises MigrateError: a replay failed; an object a checkpoint cannot reproduce.
    """
    if retire:
        from .retire import retire as retire_before

        return str(retire_before(revision))
    return str(write(revision, replay_on))


def require_servers(replay_on: Sequence[str]) -> None:
    """:raises UsageError: a ``--replay-on`` URL that names no server (SQLite is always
    replayed, into a temporary file)."""
    for url in replay_on:
        if settings.parse_url(url, need_driver=False).get_backend_name() not in ("postgresql", "mysql"):
            raise UsageError(f"--replay-on {settings.mask(url)}: give a PostgreSQL or MySQL/MariaDB server; "
                             "SQLite is always replayed, into a temporary file")


def write(revision: str, replay_on: Sequence[str] = ()) -> Path:
    """Write ``alembic/checkpoints/<REV>.json`` from replays on SQLite and on each server
    of ``replay_on`` (an empty database or not: the replay goes into a scratch schema).

    :raises UsageError: not a source tree, not one revision, two URLs of one dialect.
    :raises MigrateError: a replay failed, or the schema holds what a checkpoint cannot reproduce.
    """
    from ..history.location import not_a_checkout, script_location

    if not Path(script_location()).is_absolute():
        raise UsageError(not_a_checkout("checkpoint writes into"))
    folder = checkpoints.scripts_folder()
    graph.require_revision(revision)
    found = graph.script(revision) if not graph.is_relative(revision) and revision not in ("head", "heads") else None
    if found is None:
        raise UsageError(f"checkpoint needs one revision id, not {revision!r}")
    from ..database import snapshot

    require_servers(replay_on)
    forms: dict[str, Any] = {}
    def replayed(url: str | None) -> tuple[dict[str, Any], str]:
        with scratch(url) as db:
            form = _replay(db, found.revision, use_checkpoints=False)
            with connections.connect(db, will_write=False) as connection:
                return form, snapshot.dialect_key(connection)

    for url in (None, *replay_on):
        form, key = bridge.call(url, replayed, url)  # a postgresql+asyncpg:// server too
        if key in forms:
            raise UsageError(f"two --replay-on URLs of {key}: give one per dialect")
        forms[key] = form
    target = checkpoints.folder_of(folder)
    target.mkdir(exist_ok=True)
    path = target / f"{found.revision}{checkpoints.SUFFIX}"
    path.write_text(checkpoints.to_json(found.revision, forms, scripts=script_sums(found.revision)))
    checkpoints.shipped.cache_clear()
    return path


def script_sums(revision: str) -> dict[str, str]:
    """The sha256 of the script of ``revision`` and of each of its ancestors, as they are now."""
    from ..history import manifest

    shipped = manifest.core()
    return {rev: shipped.by_id[rev].sha256 for rev in shipped.ancestors((revision,))}


def differences(checkpoint: checkpoints.Checkpoint, url: str | None = None) -> list[str]:
    """How ``checkpoint`` differs from the replay of its history on ``url``'s dialect
    (SQLite when None): one line each; [] when equal. The file's own checksum first."""
    from ..database import snapshot

    found = []
    if checkpoint.actual != checkpoint.checksum:
        found.append(f"{checkpoint.path.name}: edited by hand (its content's sha256 {checkpoint.actual[:12]}…, "
                     f"declared {checkpoint.checksum[:12]}…)")
    with scratch(url) as replayed_db:
        with connections.connect(replayed_db, will_write=True) as connection:
            key = snapshot.dialect_key(connection)
        if checkpoint.retired:  # the scripts before it are gone: it was proven before they went
            replayed = checkpoint.forms.get(key)
        else:
            replayed = _replay(replayed_db, checkpoint.revision, use_checkpoints=False)
    if key not in checkpoint.forms or replayed is None:
        return [*found, f"{checkpoint.path.name}: no {key} form (write it with --replay-on)"]
    found += [f"{checkpoint.path.name} against the replay: {line}"
              for line in compare(replayed, checkpoint.forms[key])]
    with scratch(url) as installed_db:
        try:
            installed = _replay(installed_db, checkpoint.revision, use_checkpoints=True)
        except MigrateError as exc:
            return [*found, f"{checkpoint.path.name} does not install: {exc}"]
    found += [f"installed from {checkpoint.path.name} against the replay: {line}"
              for line in compare(replayed, installed)]
    return found


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> list[str]:
    """Two forms, one line per difference: statements by the object they create, in a
    canonical form (:mod:`.canonical`: batch mode's constraint order differs per process),
    cut where they differ; rows by table."""
    lines = []
    for part in ("statements", "after"):
        want, got = canonical.by_object(expected[part]), canonical.by_object(actual[part])
        for name in sorted(set(want) | set(got)):
            a, b = want.get(name, []), got.get(name, [])
            if a == b:
                continue
            if not a or not b:
                lines.append(f"{part}, {name}: {'expected ' + _short(a[0]) + ', found none' if a else 'not expected, found ' + _short(b[0])}")
                continue
            first = next((i for i in range(max(len(a), len(b))) if a[i:i + 1] != b[i:i + 1]))
            x, y = (a[first] if first < len(a) else "(none)"), (b[first] if first < len(b) else "(none)")
            cut_x, cut_y = canonical.excerpt(x, y)
            lines.append(f"{part}, {name}: expected {cut_x}, found {cut_y}")
    want_rows = {table["table"]: table for table in expected["rows"]}
    got_rows = {table["table"]: table for table in actual["rows"]}
    for name in sorted(set(want_rows) | set(got_rows)):
        a, b = want_rows.get(name), got_rows.get(name)
        if a != b:
            count = lambda t: len(t["values"]) if t else 0  # noqa: E731
            lines.append(f"rows of {name}: expected {count(a)}, found {count(b)} (or their values differ)")
    if expected["sequences"] != actual["sequences"]:
        lines.append(f"sequences: expected {expected['sequences']}, found {actual['sequences']}")
    return lines


def _short(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 90 else flat[:87] + "..."


def prove_all(url: str | None = None) -> list[str]:
    """Every shipped checkpoint against the replay on ``url``'s dialect (SQLite when None)."""
    problems = []
    for checkpoint in checkpoints.shipped():
        problems += differences(checkpoint, url)
    return problems


def prove(replay_on: Sequence[str] = ()) -> list[str]:
    """``checkpoint --prove``: every shipped checkpoint against the replay on SQLite and on
    each server of ``replay_on`` (in scratch places), one line per difference; [] when all
    hold. Also the sums the wheel build checks (a checkpoint stale since a script changed).

    :raises UsageError: no checkpoint to prove.
    """
    from ..history import manifest

    require_servers(replay_on)
    found = checkpoints.shipped()
    if not found:
        raise UsageError(f"no checkpoint to prove (write one with {COMMAND} checkpoint REV)")
    shipped = manifest.core()
    sha256_of = {rev.revision: rev.sha256 for rev in shipped.revisions}
    problems = [line for checkpoint in found
                for line in checkpoints.stale(checkpoint, sha256_of, set(shipped.ancestors((checkpoint.revision,))))]
    for url in (None, *replay_on):
        problems += bridge.call(url, prove_all, url)
    return problems
