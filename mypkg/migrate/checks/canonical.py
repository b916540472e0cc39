"""DDL in a canonical form, for comparing two captures of one schema.

Alembic's batch mode recreates a table with its constraints in set order, and a table's
indexes are a set too: the order differs from process to process (``PYTHONHASHSEED``),
though the schema is the same. Two statements are the same when their canonical forms
are: whitespace collapsed, and a ``CREATE TABLE``'s table constraints sorted (its
columns keep their order, which is part of the schema). Statements are compared by the
object they create, not by position.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

#: Table elements that are constraints or keys, not columns (SQLite, PostgreSQL, MySQL).
_CONSTRAINT = re.compile(r"(CONSTRAINT|PRIMARY\s+KEY|UNIQUE|CHECK|FOREIGN\s+KEY|KEY|INDEX|FULLTEXT|SPATIAL|EXCLUDE)\b",
                         re.IGNORECASE)
_CREATE_TABLE = re.compile(r"\s*CREATE\s+(?:TEMP(?:ORARY)?\s+)?TABLE\b", re.IGNORECASE)
_NAMED = re.compile(r"\s*CREATE\s+(?:UNIQUE\s+)?(?:OR\s+REPLACE\s+)?(?:TEMP(?:ORARY)?\s+)?"
                    r"(TABLE|INDEX|VIEW|TRIGGER|SEQUENCE|TYPE)\s+(?:IF\s+NOT\s+EXISTS\s+)?"
                    r"((?:[\"`\[][^\"`\]]+[\"`\]]|[\w.$]+))", re.IGNORECASE)


def _outside_quotes(text: str) -> Iterator[tuple[int, str, int]]:
    """(index, character, parenthesis depth before it) of each character outside quotes."""
    depth, quote = 0, ""
    for index, char in enumerate(text):
        if quote:
            if char == quote:
                quote = ""
        elif char in "'\"`":
            quote = char
        else:
            yield index, char, depth
            depth += (char == "(") - (char == ")")


def split_top_level(body: str) -> list[str]:
    """``body`` split at commas outside parentheses and quotes."""
    parts, start = [], 0
    for index, char, depth in _outside_quotes(body):
        if char == "," and depth == 0:
            parts.append(body[start:index])
            start = index + 1
    parts.append(body[start:])
    return [part.strip() for part in parts]


def _outer_parentheses(text: str) -> tuple[int, int] | None:
    """The first ``(`` and its matching ``)``, quotes respected."""
    opened = None
    for index, char, depth in _outside_quotes(text):
        if char == "(" and depth == 0:
            opened = index
        elif char == ")" and depth == 1 and opened is not None:
            return opened, index
    return None


def unquote(name: str) -> str:
    """A table or column name as written in DDL (``"t"``, ```t```, ``s.t``): bare, lower case."""
    return name.rpartition(".")[2].strip('"`').lower()


def _collapse(text: str) -> str:
    """Whitespace runs as one space, none inside parentheses' edges (outside quotes)."""
    out = []
    for piece in re.split(r"('(?:[^']|'')*'|\"[^\"]*\"|`[^`]*`)", text):
        if piece[:1] in ("'", '"', "`"):
            out.append(piece)
        else:
            piece = re.sub(r"\s+", " ", piece)
            out.append(re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", piece)))
    return "".join(out).strip()


def statement(text: str) -> str:
    """The canonical form of one DDL statement."""
    flat = _collapse(text)
    if not _CREATE_TABLE.match(flat):
        return flat
    span = _outer_parentheses(flat)
    if span is None:
        return flat
    opened, closed = span
    elements = split_top_level(flat[opened + 1:closed])
    columns = [e for e in elements if not _CONSTRAINT.match(e)]
    constraints = sorted(e for e in elements if _CONSTRAINT.match(e))
    return f"{flat[:opened + 1]}{', '.join(columns + constraints)}{flat[closed:]}"


def key(text: str) -> str:
    """What a statement creates (``TABLE "note"``), or its canonical text when it names nothing."""
    found = _NAMED.match(text)
    if found is None:
        return statement(text)
    return f"{found.group(1).upper()} {found.group(2).strip(chr(34) + '`[]').lower()}"


def by_object(statements: list[str]) -> dict[str, list[str]]:
    """Canonical statements grouped by what they create (a name may have several, as
    PostgreSQL's ``ALTER TABLE`` statements of one table)."""
    grouped: dict[str, list[str]] = {}
    for text in statements:
        grouped.setdefault(key(text), []).append(statement(text))
    return {name: sorted(texts) for name, texts in grouped.items()}


def excerpt(expected: str, found: str, width: int = 90) -> tuple[str, str]:
    """Both texts cut around the first place they differ (not at their starts), so that a
    difference line shows it."""
    a, b = " ".join(expected.split()), " ".join(found.split())
    first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
    start = max(0, first - width // 3)

    def cut(text: str) -> str:
        piece = text[start:start + width]
        return ("…" if start else "") + piece + ("…" if start + width < len(text) else "")

    return cut(a), cut(b)
