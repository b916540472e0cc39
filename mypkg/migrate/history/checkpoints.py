"""Checkpoints: the schema and rows a history builds up to one revision, installed in one step.

A checkpoint is a file, ``alembic/checkpoints/<revision>.json``, written by
``checkpoint REV`` from a replay of the history into empty scratch places, one per
dialect (:mod:`..database.snapshot` captures each). It sits outside ``versions/``, so
the ``alembic`` command never sees it; the wheel bundles it with the scripts.

The file declares the sha256 of its own content (the revision and every dialect's
form), and the sha256 of every script it covers as it was when the replay ran. A hand
edit that does not recompute the first, and a script changed since (the checkpoint is
stale), are caught by ``verify`` and by the wheel build (``hatch_build.py``), which has
neither the database drivers nor the application that real revisions import, so it
checks these sums and runs nothing. The replay proof is ``checkpoint --prove`` (in the
author's CI) and the suite. The ledger row of a database installed from it records the
content checksum.

Retiring: once a release ships a checkpoint, the scripts before it may leave the package
(``checkpoint REV --retire``); the file then lists them, with the last release that
shipped them, so that a database still sitting at one is told which release to take.

Standard library only: the wheel build reads it before the package is installed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, NamedTuple

FOLDER = "checkpoints"
FORMAT = 1
SUFFIX = ".json"


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read."""


class Checkpoint(NamedTuple):
    revision: str
    path: Path
    #: The sha256 the file declares for its content (what a database's ledger records).
    checksum: str
    #: The sha256 of its content as it is now: differs from ``checksum`` after a hand edit.
    actual: str
    #: Dialect name (``sqlite``, ``postgresql``, ``mysql``) -> its form (see snapshot.py).
    forms: dict[str, Any]
    #: Revisions whose scripts left the package once this checkpoint shipped.
    retired: tuple[str, ...] = ()
    #: The last release that still ships the retired scripts (from the release map).
    last_release: str | None = None
    #: The sha256 of the checkpoint revision's script before retiring cut its parents.
    script_sha256_before: str | None = None
    #: Revision -> the sha256 of its script when the checkpoint was written (None: a file
    #: written before they were recorded).
    scripts: dict[str, str] | None = None


def content_checksum(revision: str, forms: dict[str, Any]) -> str:
    """The sha256 of what a checkpoint installs, whatever the file's formatting."""
    canonical = json.dumps({"revision": revision, "forms": forms}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def to_json(revision: str, forms: dict[str, Any], retired: dict[str, Any] | None = None,
            scripts: dict[str, str] | None = None) -> str:
    payload: dict[str, Any] = {
        "format": FORMAT,
        "revision": revision,
        "checksum": content_checksum(revision, forms),
        "forms": forms,
    }
    if scripts is not None:
        payload["scripts"] = dict(sorted(scripts.items()))
    if retired:
        payload["retired"] = retired
    return json.dumps(payload, indent=1, sort_keys=True) + "\n"


def read(path: Path) -> Checkpoint:
    """:raises CheckpointError: not JSON, another format, or fields missing."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        if payload.get("format") != FORMAT:
            raise CheckpointError(f"{path.name}: format {payload.get('format')!r}, expected {FORMAT}")
        revision, forms = payload["revision"], payload["forms"]
        retired = payload.get("retired") or {}
        return Checkpoint(
            revision=revision,
            path=path,
            checksum=payload["checksum"],
            actual=content_checksum(revision, forms),
            forms=forms,
            retired=tuple(retired.get("revisions", ())),
            last_release=retired.get("last_release"),
            script_sha256_before=retired.get("script_sha256_before"),
            scripts=_sums(payload.get("scripts")),
        )
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(f"{path.name}: not a checkpoint file ({type(exc).__name__}: {exc})") from None


def _sums(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise TypeError("'scripts' must map revision ids to sha256 sums")
    return value


def stale(checkpoint: Checkpoint, sha256_of: dict[str, str], ancestors: set[str]) -> list[str]:
    """How ``checkpoint`` no longer matches the scripts it covers, one line each ([] when it
    does): ``sha256_of`` maps each shipped revision to its script's sha256, ``ancestors``
    is the checkpoint revision with every ancestor in the shipped graph."""
    name = checkpoint.path.name
    if checkpoint.actual != checkpoint.checksum:
        return [f"{name} was edited by hand (its content's sha256 {checkpoint.actual[:12]}…, "
                f"declared {checkpoint.checksum[:12]}…)"]
    if checkpoint.scripts is None:
        return [f"{name} records no checksums of the scripts it covers (written by an older release): "
                f"write it again with `checkpoint {checkpoint.revision}` in the checkout"]
    problems = []
    for revision, recorded in sorted(checkpoint.scripts.items()):
        if revision in checkpoint.retired:
            continue
        now = sha256_of.get(revision)
        if now is None:
            problems.append(f"{name} covers {revision}, whose script is gone")
        elif now != recorded:
            problems.append(f"{name} is stale: the script of {revision} changed since it was written "
                            f"(sha256 {now[:12]}…, was {recorded[:12]}…); write it again with "
                            f"`checkpoint {checkpoint.revision}`")
    added = sorted(ancestors - set(checkpoint.scripts) - set(checkpoint.retired))
    if added:
        problems.append(f"{name} is stale: {added[0]} now precedes {checkpoint.revision} but was not replayed "
                        f"into it; write it again with `checkpoint {checkpoint.revision}`")
    return problems


def folder_of(scripts_folder: Path) -> Path:
    """The checkpoints folder beside ``versions/`` (``alembic/`` or the bundled copy)."""
    return scripts_folder / FOLDER


def in_folder(folder: Path) -> list[Checkpoint]:
    """Every checkpoint in ``folder``, by revision id.

    :raises CheckpointError: a file that cannot be read, or not named after its revision.
    """
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        checkpoint = read(path)
        if path.stem != checkpoint.revision:
            raise CheckpointError(f"{path.name} holds the checkpoint of {checkpoint.revision}: "
                                  f"name it {checkpoint.revision}{SUFFIX}")
        found.append(checkpoint)
    return found


@functools.cache
def shipped() -> tuple[Checkpoint, ...]:
    """The checkpoints this package ships (installed, or in the source tree).

    :raises MigrateError: a file that cannot be read, named.
    """
    try:
        return tuple(in_folder(folder_of(scripts_folder())))
    except CheckpointError as exc:
        from ..errors import MigrateError

        raise MigrateError(str(exc)) from None


def scripts_folder() -> Path:
    """The folder holding ``versions/``: the source tree's ``alembic/`` or the bundled copy."""
    from ..identity import BUNDLED_SCRIPTS, PACKAGE_DIR

    # Where :func:`.location.script_location` finds them in a package on disk, without
    # importlib.resources (a few milliseconds of a new tenant's install through the fast path).
    for folder in (Path(PACKAGE_DIR) / BUNDLED_SCRIPTS, Path(PACKAGE_DIR).parent / "alembic"):
        if (folder / "env.py").is_file():
            return folder
    from importlib.resources import files

    from .location import script_location

    location = script_location()
    package, sep, inside = location.partition(":")
    if sep and not Path(location).is_absolute():
        return Path(str(files(package).joinpath(inside)))
    return Path(location)


def retired() -> dict[str, Checkpoint]:
    """Retired revision -> the checkpoint that replaced it."""
    return {rev: checkpoint for checkpoint in shipped() for rev in checkpoint.retired}


def covers(found: Checkpoint) -> int:
    """How many revisions a checkpoint replaces, from the manifest (the graph Alembic has
    loaded may hold only the revisions after it)."""
    from .manifest import load

    shipped = load()
    key = (found.revision, id(shipped))  # told three times per install, of a thousand revisions
    if key not in _COVERS:  # the manifest kept with its count: its id is never another's
        _COVERS[key] = (shipped, len(shipped.ancestors((found.revision,))))
    return _COVERS[key][1]


_COVERS: dict[tuple[str, int], tuple[object, int]] = {}


def describe(found: Checkpoint) -> str:
    """What the output and the events call a checkpoint's install."""
    return f"checkpoint of {covers(found)} revisions ({found.path.name})"


def ledger_detail(found: Checkpoint) -> str:
    """The ledger row's detail of a checkpoint installed."""
    return f"{covers(found)} revisions in one step"


def newest_within(planned: set[str], ancestors_of: Any, dialect: str) -> Checkpoint | None:
    """The checkpoint that covers the most of ``planned`` (revisions an upgrade from an
    empty database would run): its revision and all its ancestors must be planned, and it
    must hold a form for ``dialect``. ``ancestors_of(rev)`` gives a revision's ancestors."""
    best: tuple[int, Checkpoint] | None = None
    for checkpoint in shipped():
        if checkpoint.revision not in planned or dialect not in checkpoint.forms:
            continue
        covered = ancestors_of(checkpoint.revision)
        if not covered <= planned:
            continue
        if best is None or len(covered) > best[0]:
            best = (len(covered), checkpoint)
    return best[1] if best else None
