"""A tenant's ``CREATE EXTENSION``, placed where every tenant sees it.

An extension is the database's, once: ``CREATE EXTENSION IF NOT EXISTS pg_trgm`` run in the
first tenant puts its types, functions and operator classes in that tenant's schema (the
first on its search path), and every later tenant skips it and cannot see them (prefect's
77ebcc9cf355, then an index ``USING gin (name gin_trgm_ops)``). Run for a tenant, the
statement goes to the shared extensions schema instead (made if missing), which is on every
tenant's search path after the tenant's own (:func:`.connections._search_path`). A statement
naming its schema is left as written.
"""

from __future__ import annotations

import re

_CREATE_EXTENSION = re.compile(r"\A\s*CREATE\s+EXTENSION\s", re.IGNORECASE)
_NAMES_ITS_SCHEMA = re.compile(r"\sSCHEMA\s", re.IGNORECASE)
#: Offline SQL: each statement Alembic renders starts a line and ends with ";".
_RENDERED = re.compile(r"^CREATE\s+EXTENSION\s[^;]*;", re.IGNORECASE | re.MULTILINE)


def search_path(schema: str, quote: object) -> str:
    """A tenant's search path, quoted by ``quote`` (the dialect's): its schema, then the
    shared extensions schema (:func:`.settings.extensions_schema`) unless there is none."""
    from .settings import extensions_schema

    shared = extensions_schema()
    return quote(schema) if shared in (None, schema) else f"{quote(schema)}, {quote(shared)}"  # type: ignore[operator]


def placed(statement: str, schema: str, quoted: str) -> str:
    """``statement`` as a tenant runs it: a ``CREATE EXTENSION`` without ``SCHEMA`` goes to
    ``schema`` (``quoted``: that name as a quoted identifier), created first if missing;
    anything else unchanged. One statement (a ``DO`` block): every driver takes it, and the
    role needs CREATE on the database only when the schema is missing."""
    if not _CREATE_EXTENSION.match(statement) or _NAMES_ITS_SCHEMA.search(statement):
        return statement
    literal = "'" + schema.replace("'", "''") + "'"
    create = statement.strip().rstrip(";").strip()
    return (f"DO $tenant_extension$ BEGIN "
            f"IF NOT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = {literal}) "
            f"THEN CREATE SCHEMA IF NOT EXISTS {quoted}; END IF; "
            f"{create} SCHEMA {quoted}; END $tenant_extension$")


def placed_in_script(sql: str, schema: str, quoted: str) -> str:
    """Offline SQL for a tenant: each ``CREATE EXTENSION`` placed as :func:`placed` does."""
    return _RENDERED.sub(lambda found: placed(found.group(0), schema, quoted) + ";", sql)
