"""Integrity: do the applied revisions still match the scripts this package ships?

The ledger records the sha256 of every script when it ran; the manifest holds the
sha256 of every script shipped. A difference means the history was rewritten after it
reached this database, which ``upgrade`` refuses (unless told) and ``verify`` reports.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..database import connections, ledger
from ..errors import MigrateError
from ..history import checkpoints
from ..history.manifest import load as load_manifest
from ..identity import COMMAND, PACKAGE, PACKAGE_DIR
from ..results import REALIGNED, ChecksumProblem

if TYPE_CHECKING:
    from alembic.script import Script
    from sqlalchemy.engine import Connection

    from ..database.target import Database


def problems(connection: Connection, current: Sequence[str]) -> list[ChecksumProblem]:
    """Every applied revision whose script differs, is gone, or is unknown here."""
    shipped = load_manifest()
    recorded = ledger.recorded_checksums(connection)
    found = [
        ChecksumProblem(rev, "unknown revision", "the database is at it; this package does not ship it")
        for rev in current
        if rev not in shipped
    ]
    applied_now = shipped.ancestors(tuple(current))
    for rev in applied_now:
        checksum = recorded.get(rev)
        if checksum is not None and checksum not in _accepted(rev, shipped.by_id[rev].sha256):
            found.append(
                ChecksumProblem(
                    rev,
                    "mismatch",
                    f"{shipped.by_id[rev].filename} changed since it was applied "
                    f"(recorded sha256 {checksum[:12]}…, shipped {shipped.by_id[rev].sha256[:12]}…)",
                )
            )
    applied_set = set(applied_now)
    retired = checkpoints.retired()
    for rev in recorded:
        if rev not in shipped and rev not in current and rev not in applied_set and rev not in retired:
            found.append(ChecksumProblem(rev, "missing script", "recorded as applied; no longer shipped"))
    return found + _installed_checkpoints(connection)


def _installed_checkpoints(connection: Connection) -> list[ChecksumProblem]:
    """A checkpoint installed here whose shipped file now installs something else."""
    from .checkpoint import CHECKPOINT

    shipped = {checkpoint.revision: checkpoint for checkpoint in checkpoints.shipped()}
    found = []
    for row in ledger.rows(connection):
        checkpoint = shipped.get(row.revision)
        if row.outcome == CHECKPOINT and checkpoint is not None and row.checksum != checkpoint.checksum:
            found.append(ChecksumProblem(
                row.revision, "mismatch",
                f"checkpoint {checkpoint.path.name} changed since it was installed here "
                f"(recorded sha256 {(row.checksum or '')[:12]}…, shipped {checkpoint.checksum[:12]}…)"))
    return found


def edited_checkpoints() -> list[ChecksumProblem]:
    """Checkpoint files whose content is not what they declare (edited by hand), or that
    no longer match the scripts they cover (stale: a script changed since)."""
    from ..history import manifest

    found = []
    shipped = manifest.core()
    sha256_of = {rev.revision: rev.sha256 for rev in shipped.revisions}
    for checkpoint in checkpoints.shipped():
        if checkpoint.actual != checkpoint.checksum:
            found.append(ChecksumProblem(
                checkpoint.revision, "edited checkpoint",
                f"{checkpoint.path.name} was changed after it was written: its content's sha256 is "
                f"{checkpoint.actual[:12]}…, it declares {checkpoint.checksum[:12]}…"))
        elif checkpoint.scripts is not None:
            covered = set(shipped.ancestors((checkpoint.revision,)))
            found += [ChecksumProblem(checkpoint.revision, "stale checkpoint", line)
                      for line in checkpoints.stale(checkpoint, sha256_of, covered)]
    return found


def _accepted(revision: str, sha256: str) -> tuple[str | None, ...]:
    """The checksums a revision's script may have had when it ran: the shipped one, and,
    for a checkpoint's revision whose parents were retired, the script before that cut."""
    before = next((c.script_sha256_before for c in checkpoints.shipped() if c.revision == revision), None)
    return (sha256, before)


def refuse_on_problems(connection: Connection, current: Sequence[str], db: Database) -> None:
    """:raises MigrateError: an applied revision's script changed or is gone."""
    found = [p for p in problems(connection, current) if p.kind != "unknown revision"]
    if found:
        first = found[0]
        raise MigrateError(
            f"{db.masked}: {len(found)} applied revision(s) differ from the scripts "
            f"shipped, e.g. {first.revision}: {first.detail}; run {COMMAND} verify; if the change is "
            f"intended, accept it for good with {COMMAND} repair --checksums (or upgrade with "
            "--ignore-checksums, this run only)"
        )


def file_checksum(path: str | os.PathLike[str]) -> str:
    """The sha256 of a script as it is on disk now: what actually runs."""
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def edited_scripts() -> list[ChecksumProblem]:
    """Installed scripts that differ from the manifest built with the package (edited,
    or deleted, after install). Empty in a source tree, whose manifest is the scripts."""
    from ..history.scripts import path_of, script_directory

    script_directory()  # a script deleted from the install: a damaged install, said in one line
    shipped = load_manifest()
    found = []
    for rev in shipped.revisions:
        if not shipped.from_build(rev.revision):
            continue
        path = path_of(rev.revision)
        if not os.path.isfile(path):
            found.append(ChecksumProblem(rev.revision, "edited script", f"{rev.filename} is missing from the install"))
        elif file_checksum(path) != rev.sha256:
            found.append(
                ChecksumProblem(rev.revision, "edited script", f"{rev.filename} was changed after the package was built")
            )
    return found


def refuse_edited(plan: Sequence[Script], db: Database) -> None:
    """:raises MigrateError: a script about to run differs from the one the package shipped."""
    shipped = load_manifest()
    for script in plan:
        entry = shipped.by_id.get(script.revision)
        if entry is not None and shipped.from_build(entry.revision) and file_checksum(script.path) != entry.sha256:
            plugin = shipped.plugin(shipped.owner.get(entry.revision, ""))
            raise MigrateError(
                f"{db.masked}: {entry.filename} ({script.revision}) was changed after the package "
                f"was built; nothing was run; reinstall {PACKAGE if plugin is None else plugin.distribution}, "
                "or upgrade with --ignore-checksums"
            )


def release_problems() -> list[ChecksumProblem]:
    """Entries of the release map that name no shipped revision."""
    from pathlib import Path

    from ..history import manifest

    releases = manifest.read_releases(Path(PACKAGE_DIR) / "releases.py")
    return [
        ChecksumProblem(version, "bad release", detail)
        for version, detail in manifest.release_problems(releases, load_manifest(), frozenset(checkpoints.retired()))
    ]


def shipped_checksum(revision: str) -> str | None:
    """The manifest's sha256 of ``revision``'s script; None when not shipped."""
    entry = load_manifest().by_id.get(revision)
    return entry.sha256 if entry is not None else None


def realign(connection: Connection, only: str | None = None) -> list[str]:
    """Accept the shipped scripts as they are now for every applied revision whose
    recorded checksum differs (or only ``only``): one ledger row each (``realigned``,
    the new checksum, who did it and the old one), committed together.

    :raises UsageError: ``only`` is not an applied revision whose checksum differs.
    """
    import getpass
    import socket

    from ..errors import UsageError

    current = connections.read_current(connection)
    mismatched = [p.revision for p in problems(connection, current) if p.kind == "mismatch"]
    if only is not None:
        if only not in mismatched:
            raise UsageError(f"{only}'s recorded checksum matches the shipped script (or it is not applied): "
                             f"nothing to realign (differing: {', '.join(mismatched) or 'none'})")
        mismatched = [only]
    recorded = ledger.recorded_checksums(connection)
    try:
        who = f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # noqa: BLE001 - no user name in a bare container: still recorded
        who = f"uid {os.getuid()}@{socket.gethostname()}" if hasattr(os, "getuid") else "unknown"
    shipped = load_manifest()
    if mismatched:
        ledger.ensure(connection)  # a ledger from before plugins: their column first
    for rev in mismatched:
        ledger.write(connection, revision=rev, direction="repair", checksum=shipped.by_id[rev].sha256,
                     started_at=ledger.now(), outcome=REALIGNED,
                     detail=f"checksum realigned by {who}; was {(recorded.get(rev) or '')[:12]}")
    connection.commit()
    return mismatched
