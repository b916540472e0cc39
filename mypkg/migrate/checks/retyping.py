"""Which column type changes PostgreSQL makes without rewriting the table, for ``lint``.

squawk's ``changing-column-type`` cannot know a column's type before the ALTER; the
history rendered from its start does (tables created, columns added or retyped). A
varchar made longer, or made unbounded or ``text``, rewrites nothing: not a finding.
"""

from __future__ import annotations

import re

from .canonical import split_top_level, unquote


#: The string types whose changes can be told apart: a varchar (with a length or not), text.
_COLUMN_TYPE = r"(?P<type>(?:CHARACTER\s+VARYING|VARCHAR)(?:\s*\(\s*\d+\s*\))?(?![\w(])|TEXT\b)"
_TABLE_BODY = re.compile(r"^\s*CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(?P<table>\S+)\s*\((?P<body>.*)\)\s*$",
                         re.IGNORECASE | re.DOTALL)
_ADDED = re.compile(r"ALTER\s+TABLE\s+(?P<table>\S+)\s+ADD\s+(?:COLUMN\s+)?(?P<column>\S+)\s+" + _COLUMN_TYPE,
                    re.IGNORECASE)
_RETYPED = re.compile(r"ALTER\s+TABLE\s+(?P<table>\S+)\s+ALTER\s+COLUMN\s+(?P<column>\S+)\s+TYPE\s+"
                      + _COLUMN_TYPE + r"\s*;?\s*$", re.IGNORECASE)


def _length(kind: str) -> float:
    """A varchar's length; infinity for an unbounded one (no length, text)."""
    found = re.search(r"\(\s*(\d+)\s*\)", kind)
    return float(found.group(1)) if found else float("inf")


def column_types(upgrades: dict[str, str]) -> dict[str, dict[tuple[str, str], str]]:
    """Per revision, the string columns' types just before it, as the history rendered so
    far declares them (tables created, columns added or retyped)."""
    known: dict[tuple[str, str], str] = {}
    before: dict[str, dict[tuple[str, str], str]] = {}
    for revision, chunk in upgrades.items():
        before[revision] = dict(known)
        for statement in (part.strip() for part in chunk.split(";")):
            table = _TABLE_BODY.match(statement)
            if table is not None:
                for element in split_top_level(table.group("body")):
                    column = re.match(r"(\S+)\s+" + _COLUMN_TYPE, element, re.IGNORECASE)
                    if column is not None:
                        known[(unquote(table.group("table")), unquote(column.group(1)))] = column.group("type")
                continue
            for pattern in (_ADDED, _RETYPED):
                found = pattern.search(statement)
                if found is not None:
                    known[(unquote(found.group("table")), unquote(found.group("column")))] = found.group("type")
    return before


def widened_without_rewrite(rule: str, statement: str, types_before: dict[tuple[str, str], str]) -> bool:
    """A squawk ``changing-column-type`` finding (its ``rule`` and ``statement``) on a varchar
    made longer or unbounded (no rewrite on PostgreSQL): a false positive."""
    found = _RETYPED.search(statement)
    if rule != "changing-column-type" or found is None:
        return False
    old = types_before.get((unquote(found.group("table")), unquote(found.group("column"))))
    if old is None or old.upper().startswith("TEXT"):
        return False
    return _length(found.group("type")) >= _length(old)
