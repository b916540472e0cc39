"""Contract operations in pre-deploy revisions, for ``lint``.

A pre-deploy revision runs while the old release still runs (docs/deploying.md). Whatever
that release still reads or writes must outlive it: dropping a table or a column, renaming
one, making a column NOT NULL (the old release inserts rows without it) or changing its type
in place (rewrites and narrows) breaks it for the length of the rollout. Each belongs in a
post-deploy revision; a rename or a type change in two steps (:mod:`mypkg.phases`).

Read from the rendered SQL (PostgreSQL's and MySQL's forms). A table the same revision
creates is nobody else's yet: its changes are not findings.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .canonical import split_top_level, unquote
from .retyping import widened_without_rewrite

_NAME = r"(?:\"[^\"]+\"|`[^`]+`|[\w$]+)(?:\.(?:\"[^\"]+\"|`[^`]+`|[\w$]+))?"
_DROP_TABLE = re.compile(rf"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<table>{_NAME})", re.IGNORECASE)
_ALTER_TABLE = re.compile(rf"^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?P<table>{_NAME})\s+(?P<actions>.*)$",
                          re.IGNORECASE | re.DOTALL)
_CREATED = re.compile(rf"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<table>{_NAME})", re.IGNORECASE)
#: One action of an ALTER TABLE, and what it does to the running release.
_ACTIONS = (
    (re.compile(rf"^DROP\s+COLUMN\s+(?:IF\s+EXISTS\s+)?(?P<column>{_NAME})", re.IGNORECASE), "drop column"),
    (re.compile(rf"^RENAME\s+TO\s+(?P<new>{_NAME})", re.IGNORECASE), "rename table"),
    (re.compile(rf"^RENAME\s+(?:COLUMN\s+)?(?P<column>{_NAME})\s+TO\s+(?P<new>{_NAME})", re.IGNORECASE),
     "rename column"),
    (re.compile(rf"^CHANGE\s+(?:COLUMN\s+)?(?P<column>{_NAME})\s+(?P<new>{_NAME})\s", re.IGNORECASE),
     "rename column"),
    (re.compile(rf"^ALTER\s+(?:COLUMN\s+)?(?P<column>{_NAME})\s+SET\s+NOT\s+NULL", re.IGNORECASE), "NOT NULL on"),
    (re.compile(rf"^ALTER\s+(?:COLUMN\s+)?(?P<column>{_NAME})\s+(?:SET\s+DATA\s+)?TYPE\s", re.IGNORECASE),
     "change the type of"),
)


class Contract(NamedTuple):
    revision: str
    statement: str  #: its first line
    what: str  #: "drop column note.body"


def in_pre_deploy(upgrades: dict[str, str], phase_of: dict[str, str],
                  types_before: dict[str, dict[tuple[str, str], str]]) -> list[Contract]:
    """The first contract operation of each pre-deploy revision among ``upgrades`` (each
    revision's rendered SQL). ``types_before``: the string columns' types before each
    revision (a varchar made longer narrows nothing)."""
    found = []
    for revision, chunk in upgrades.items():
        if phase_of.get(revision, "pre") != "pre":
            continue
        statements = [part.strip() for part in chunk.split(";") if part.strip()]
        created = {unquote(m.group("table")) for m in map(_CREATED.match, statements) if m}
        for statement in statements:
            what = _contract(statement, created, types_before.get(revision, {}))
            if what is not None:
                found.append(Contract(revision, statement.splitlines()[0], what))
                break
    return found


def _contract(statement: str, created: set[str], types_before: dict[tuple[str, str], str]) -> str | None:
    dropped = _DROP_TABLE.match(statement)
    if dropped is not None:
        table = unquote(dropped.group("table"))
        return None if table in created or table.startswith("_alembic_tmp_") else f"drop table {table}"
    altered = _ALTER_TABLE.match(statement)
    if altered is None or unquote(altered.group("table")) in created:
        return None
    table = unquote(altered.group("table"))
    for action in split_top_level(altered.group("actions")):
        for pattern, kind in _ACTIONS:
            found = pattern.match(action.strip())
            if found is None:
                continue
            if kind == "rename table":
                return f"rename table {table}"
            column = unquote(found.group("column"))
            if kind == "rename column" and column == unquote(found.group("new")):
                continue  # MySQL restating a column under its own name: a type or NULL change
            if kind == "change the type of" and widened_without_rewrite("changing-column-type", statement,
                                                                         types_before):
                continue
            return f"{kind} {table}.{column}"
    return None
