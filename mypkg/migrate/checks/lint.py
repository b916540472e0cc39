"""``lint``: dangerous migrations caught before they ship.

Each revision's SQL is rendered offline (what ``--sql`` prints), cut at Alembic's
``-- Running upgrade A -> B`` markers, and handed to squawk (``squawk-cli``, optional:
``pip install squawk-cli``) as a file of its own, with what the runner knows: a revision runs in its
own transaction, statements after its ``COMMIT`` are its autocommit block, and a statement
lock timeout may be assumed. mypkg's own rules look at what squawk cannot see: a revision
that changes the schema with a downgrade that does nothing, data changed in the same
transaction as DDL, a constraint the naming convention leaves unnamed, a script changed
since a release shipped it (``lint --record-release VERSION`` keeps their checksums), and a
pre-deploy revision that breaks the release still running (:mod:`.contract`).

Configuration, beside the scripts in ``alembic/lint.toml`` (bundled with them; a
``pyproject.toml`` may add to it under ``[tool.mypkg.lint]``)::

    disable = ["prefer-bigint-over-int"]          # rules off everywhere
    assume-lock-timeout = true                    # deploys use --statement-lock-timeout
    [[ignore]]                                    # one finding accepted knowingly
    revision = "REV"
    rule = "prefer-robust-stmts"
    reason = "a new table: nothing to re-run against"
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import MigrateError, UsageError
from ..identity import PACKAGE
from . import released
from .released import scripts_folder
from .canonical import unquote

_RUNNING = re.compile(r"^-- Running (upgrade|downgrade) (.*?) -> (.*?)\s*$", re.MULTILINE)
_DDL = re.compile(r"^\s*(CREATE|ALTER|DROP|RENAME|TRUNCATE)\b", re.IGNORECASE | re.MULTILINE)
_DML = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b(?![^;]*\balembic_version\b)", re.IGNORECASE | re.MULTILINE)
#: Statements Alembic adds to every revision: not the revision's own work.
_BOOKKEEPING = re.compile(r"alembic_version", re.IGNORECASE)
_BATCH_COPY = re.compile(r"INSERT\s+INTO\s+[\"`]?_alembic_tmp_", re.IGNORECASE)


class Finding(NamedTuple):
    revision: str
    rule: str
    statement: str  #: the offending statement's first line
    fix: str


class Settings(NamedTuple):
    disable: frozenset[str] = frozenset()
    ignore: tuple[tuple[str, str], ...] = ()  #: (revision, rule) accepted knowingly
    assume_lock_timeout: bool = False


#: The lint settings of the shipped revisions, beside them (``alembic/lint.toml``, bundled as
#: ``migrations/lint.toml``): the findings accepted for a revision travel with the revision.
SETTINGS_FILE = "lint.toml"


def load_settings(root: Path | None = None) -> Settings:
    """The lint settings: the scripts' own ``lint.toml`` (installed or in the source tree),
    with ``[tool.mypkg.lint]`` of ``root``'s ``pyproject.toml`` (default: the working
    directory) added to it when there is one; defaults without either.

    :raises UsageError: an ignore entry without a reason.
    """
    import tomllib

    tables = []
    bundled = scripts_folder() / SETTINGS_FILE
    if bundled.is_file():
        tables.append((str(bundled), tomllib.loads(bundled.read_text())))
    path = (root or Path.cwd()) / "pyproject.toml"
    if path.is_file():
        found = tomllib.loads(path.read_text()).get("tool", {}).get(PACKAGE, {}).get("lint")
        if found is not None:
            tables.append((f"[tool.{PACKAGE}.lint]", found))
    disable: set[str] = set()
    ignores: list[tuple[str, str]] = []
    assume = False
    for where, table in tables:
        disable.update(table.get("disable", []))
        assume = assume or bool(table.get("assume-lock-timeout", False))
        for entry in table.get("ignore", []):
            if not str(entry.get("reason", "")).strip():
                raise UsageError(f"{where}: ignore {entry.get('revision')} {entry.get('rule')}: give a reason")
            ignores.append((str(entry["revision"]), str(entry["rule"])))
    return Settings(frozenset(disable), tuple(dict.fromkeys(ignores)), assume)


def split_by_revision(sql: str) -> dict[str, str]:
    """Offline SQL cut into each revision's own statements, keyed by the revision that ran
    (the target of an upgrade step, the source of a downgrade step)."""
    marks = list(_RUNNING.finditer(sql))
    chunks: dict[str, str] = {}
    for index, mark in enumerate(marks):
        end = marks[index + 1].start() if index + 1 < len(marks) else len(sql)
        body = sql[mark.end():end]
        body = re.sub(r"\s*BEGIN;\s*$", "\n", body)  # the next revision's BEGIN
        direction, lower, upper = mark.groups()
        revision = (upper if direction == "upgrade" else lower).strip()
        chunks[revision] = "BEGIN;\n" + body.strip() + "\n"
    return chunks


def _own_work(chunk: str) -> list[str]:
    statements = [s.strip() for s in chunk.split(";")]
    return [s for s in statements if s and s.upper() not in ("BEGIN", "COMMIT") and not _BOOKKEEPING.search(s)]


#: A constraint rendered without ``CONSTRAINT name`` before it: the database makes a name up,
#: different per dialect, and a later revision cannot drop it portably.
_UNNAMED = re.compile(r"(?<!\S)(UNIQUE|FOREIGN KEY|CHECK)\s*\(", re.IGNORECASE)
_NAMED = re.compile(r"CONSTRAINT\s+\S+\s+$", re.IGNORECASE)


def _unnamed_constraint(statement: str) -> str | None:
    for match in _UNNAMED.finditer(statement):
        if not _NAMED.search(statement[: match.start()]):
            return match.group(1).upper()
    return None


_CREATED = re.compile(r"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?((?:[\w$]+\.)?[\w$\"`]+)",
                      re.IGNORECASE | re.MULTILINE)
_INSERT_INTO = re.compile(r"^\s*INSERT\s+INTO\s+((?:[\w$]+\.)?[\w$\"`]+)", re.IGNORECASE)


def _into_created(statement: str, created: set[str]) -> bool:
    found = _INSERT_INTO.match(statement)
    return found is not None and unquote(found.group(1)) in created


def own_rules(upgrades: dict[str, str], downgrades: dict[str, str]) -> list[Finding]:
    """mypkg's rules, at the level of Alembic revisions."""
    found = []
    for revision, chunk in upgrades.items():
        work = _own_work(chunk)
        for statement in work:
            kind = _unnamed_constraint(statement)
            if kind and _DDL.match(statement):
                found.append(Finding(revision, "unnamed-constraint", statement.splitlines()[0],
                                     f"name the {kind} constraint, or add its kind to the MetaData "
                                     f"naming convention ({PACKAGE}/naming.py)"))
                break
        ddl = [s for s in work if _DDL.match(s)]
        if ddl and not _own_work(downgrades.get(revision, "")):
            found.append(Finding(revision, "empty-downgrade", ddl[0].splitlines()[0],
                                 "write a downgrade that undoes the schema change, or raise in it"))
        in_transaction = chunk.split("COMMIT;")[0]
        # Batch mode's copy into its temporary table is how SQLite alters a table, not data
        # work; nor are seed rows put into a table this very revision creates (nobody else
        # can be holding it, or waiting for it).
        created = {unquote(name) for name in _CREATED.findall(in_transaction)}
        dml = [s for s in _own_work(in_transaction) if _DML.match(s) and not _BATCH_COPY.match(s)
               and not _into_created(s, created)]
        if dml and [s for s in _own_work(in_transaction) if _DDL.match(s)]:
            found.append(Finding(revision, "data-with-ddl", dml[0].splitlines()[0],
                                 "move the data change into a revision of its own (or a batched backfill), "
                                 "so DDL locks are not held while rows are rewritten"))
    return found


def squawk_findings(chunks: dict[str, str], settings: Settings) -> list[Finding] | None:
    """squawk's findings per revision; None when squawk is not installed."""
    import sys

    beside = Path(sys.executable).parent / ("squawk.exe" if os.name == "nt" else "squawk")
    squawk = shutil.which("squawk") or (str(beside) if beside.exists() else None)  # in this environment
    if squawk is None:
        return None
    found = []
    with tempfile.TemporaryDirectory(prefix=f"{PACKAGE}-lint-") as tmp:
        for revision, chunk in chunks.items():
            path = Path(tmp) / f"{revision}.sql"
            prefix = "SET lock_timeout = '5s';\n" if settings.assume_lock_timeout else ""
            path.write_text(prefix + chunk)
            result = subprocess.run([squawk, "--reporter", "json", str(path)], capture_output=True, text=True,
                                    env={**os.environ, "NO_COLOR": "1"})
            # Findings exit 1 too, with their report; a failure (its configuration, say)
            # exits non-zero with nothing on stdout: not "no findings".
            reports: list[dict[str, Any]] | None = None
            if result.returncode == 0 or result.stdout.strip():
                with contextlib.suppress(json.JSONDecodeError):
                    reports = json.loads(result.stdout or "[]")
            if reports is None:
                said = (result.stderr or result.stdout).strip().splitlines() or [f"exit {result.returncode}"]
                raise MigrateError(f"squawk failed on {revision}: {said[0][:200]}")
            lines = path.read_text().splitlines()
            for report in reports:
                at = report.get("line", -1)  # squawk counts lines from 0
                line = lines[at].strip() if 0 <= at < len(lines) else ""
                fix = report.get("help") or report.get("message", "")
                found.append(Finding(revision, report["rule_name"], line, fix))
    return found


def range_of(text: str) -> str:
    """A revision range, or the path of one revision script (Alembic's post-write hook
    passes the new file): then that revision alone."""
    if not text.endswith(".py") or not Path(text).is_file():
        return text
    from ..history.manifest import parse_script

    script = parse_script(Path(text))
    if script is None:
        raise UsageError(f"{text} is not a revision script")
    parents = script.down_revisions
    return f"{parents[0]}:{script.revision}" if len(parents) == 1 else f"base:{script.revision}"


#: squawk's rules for what breaks the clients still running: the very work of a post-deploy
#: revision, which runs once none is left (docs/deploying.md).
AFTER_THE_OLD_RELEASE = frozenset({"ban-drop-column", "ban-drop-table", "renaming-column", "renaming-table"})


class Unchecked(NamedTuple):
    """A revision whose SQL cannot be rendered offline (it reads the database): a note."""

    revision: str
    direction: str
    reason: str
    #: False: it failed without reading the database, so it cannot run anywhere (a finding).
    reads_database: bool = True


class LintResult(NamedTuple):
    findings: list[Finding]
    squawked: bool  #: squawk ran (it is optional)
    unchecked: list[Unchecked]  #: revisions that could not be rendered, and why


def render_each(direction: str, start: str, end: str, url: Any) -> tuple[dict[str, str], list[Unchecked]]:
    """Each revision's offline SQL between ``start`` and ``end`` (an upgrade from ``start``
    to ``end``; a downgrade from ``end`` back to ``start``), going on past a revision that
    cannot be rendered offline (one that reads the database: ``op.get_bind()``, an ORM
    session), which is returned as unchecked instead of ending the lint there."""
    from ..history import graph
    from ..runtime.offline import OfflineSQLError, render

    chunks: dict[str, str] = {}
    unchecked: list[Unchecked] = []
    here = start if direction == "upgrade" else end
    applied: tuple[str, ...] = ()
    while True:
        span = f"{here}:{end}" if direction == "upgrade" else f"{here}:{start}"
        try:
            chunks.update(split_by_revision(render(direction, end if applied else span, url,  # type: ignore[arg-type]
                                                   use_checkpoints=False, applied=applied)))
            return chunks, unchecked
        except OfflineSQLError as exc:
            if exc.revision is None or any(u.revision == exc.revision for u in unchecked):
                raise
            chunks.update(split_by_revision(exc.sql))
            unchecked.append(Unchecked(exc.revision, direction, exc.reason, exc.reads_database))
            if direction == "upgrade":
                # The next span starts just after it, and after everything rendered so far:
                # from it alone, Alembic would walk the other branches again from base.
                applied = _tips({*chunks, *(u.revision for u in unchecked)} - {"base"})
                continue
            script = graph.script(exc.revision)
            parents = graph.as_tuple(script.down_revision if script is not None else None)
            if len(parents) != 1 or exc.revision == start:
                return chunks, unchecked  # base, or a merge: the rest of the way is not linear
            here = parents[0]


def _tips(revisions: set[str]) -> tuple[str, ...]:
    """The revisions of ``revisions`` that no other one of them grows from: the heads a
    database holding all of them would have."""
    from ..history import graph

    below: set[str] = set()
    for revision in revisions:
        below |= graph.ancestors((revision,)) - {revision}
    return tuple(sorted(revisions - below))


#: How a checkpoint is named in findings and in lint.toml's accepted findings.
CHECKPOINT_PREFIX = "checkpoint:"


def _checkpoints_in(upgrades: dict[str, str], dialect: str) -> dict[str, str]:
    """The SQL of each shipped checkpoint whose revision is in the linted range."""
    from ..database.snapshot import render
    from ..history import checkpoints

    chunks = {}
    for checkpoint in checkpoints.shipped():
        key = next((k for k in ((dialect, "mariadb") if dialect == "mysql" else (dialect,)) if k in checkpoint.forms), None)
        if checkpoint.revision in upgrades and key is not None:
            chunks[CHECKPOINT_PREFIX + checkpoint.revision] = "BEGIN;\n" + render(checkpoint.forms[key], key) + "COMMIT;\n"
    return chunks


def lint(revision_range: str = "base:heads", dialect: str = "postgresql", settings: Settings | None = None,
         ) -> LintResult:
    """Every finding, whether squawk ran, and the revisions that could not be rendered.

    :raises UsageError: unknown revision, bad range.
    """
    from sqlalchemy.engine import make_url

    from ..history.manifest import load as load_manifest
    from ..history.phases import of_every
    from .contract import in_pre_deploy
    from .retyping import column_types

    settings = settings or Settings()
    url = make_url(f"{dialect}://lint/lint" if dialect != "sqlite" else "sqlite://")
    start, _, end = revision_range.rpartition(":")
    upgrades, unchecked = render_each("upgrade", start or "base", end, url)
    # Back from the range's own end (not from the heads), down to its start; offline,
    # Alembic goes back from one head at a time (installed plugins add heads).
    heads = load_manifest().heads
    downgrades = {}
    for one in heads if end == "heads" and len(heads) > 1 else (end,):
        found_down, unchecked_down = render_each("downgrade", start or "base", one, url)
        downgrades.update(found_down)
        unchecked += [u for u in unchecked_down if u not in unchecked]
    downgrades = {rev: sql for rev, sql in downgrades.items() if rev in upgrades}
    checkpoint_chunks = _checkpoints_in(upgrades, dialect)
    found = own_rules(upgrades, downgrades)
    phase = of_every(load_manifest())
    if dialect != "sqlite":  # batch mode's copies would read as drops
        before = column_types(upgrades) if start in ("", "base") else {}
        found += [Finding(c.revision, "breaks-running-release", c.statement,
                          f"breaks the release still running: {c.what}; move it to a post-deploy revision "
                          f'(phase = "post"), or rename or retype in two steps ({PACKAGE}.phases)')
                  for c in in_pre_deploy(upgrades, phase, before)]
    # A checkpoint is linted as a revision (its downgrade is its revisions'); its rows go
    # into a new, empty database: no lock held while they load, so data-with-ddl is moot.
    found += [f for f in own_rules(checkpoint_chunks, checkpoint_chunks) if f.rule != "data-with-ddl"]
    # Within the range linted; a released script since removed has no range to be in.
    found.extend(Finding(*f) for f in released.released_changes() if f[0] in upgrades or f[0] not in load_manifest().by_id)
    squawked = squawk_findings({**upgrades, **checkpoint_chunks}, settings) if dialect == "postgresql" else []
    if squawked is not None:
        from .retyping import widened_without_rewrite

        types = column_types(upgrades) if start in ("", "base") else {}
        found.extend(f for f in squawked if not widened_without_rewrite(f.rule, f.statement, types.get(f.revision, {}))
                     and not (f.rule in AFTER_THE_OLD_RELEASE and phase.get(f.revision) == "post"))
    # A revision that fails before reaching any database fails under upgrade too: a finding.
    found += [Finding(u.revision, "does-not-run", f"{u.direction}: {u.reason}",
                      f"fix the revision's {u.direction}(): it fails before reaching any database, so "
                      f"{u.direction} fails on it too") for u in unchecked if not u.reads_database]
    unchecked = [u for u in unchecked if u.reads_database]
    kept = [f for f in found if f.rule not in settings.disable and (f.revision, f.rule) not in settings.ignore]
    return LintResult(kept, squawked is not None, unchecked)
