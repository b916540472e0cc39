"""A plugin that declares its own naming convention (a literal ``NAMING_CONVENTION`` in its
package's ``__init__.py``, as the core's ``naming.py`` holds one) gets its revisions run under it: Alembic names every
constraint a script leaves unnamed from the migration context's MetaData, which is the
core's. A history adopted as a plugin (gnocchi's, named by SQLAlchemy's default) had its
CHECK constraints named twice over by the core's ``ck_%(table_name)s_...`` and its own
revisions then failed. A plugin that declares none keeps the core's, as before."""

from __future__ import annotations

import functools
from typing import Any


def declared(folder: str) -> dict[str, str] | None:
    """The convention a plugin's package declares (a literal ``NAMING_CONVENTION`` in its
    ``__init__.py``), read from the source: migrating never imports a plugin's package.
    None when it declares none."""
    import ast
    from pathlib import Path

    try:
        tree = ast.parse((Path(folder) / "__init__.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None  # said by whatever runs the plugin's scripts
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else []
        if any(isinstance(t, ast.Name) and t.id == "NAMING_CONVENTION" for t in targets) and node.value is not None:
            try:
                found = ast.literal_eval(node.value)
            except ValueError:
                return None
            return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else None
    return None


def per_plugin(migration: Any) -> None:
    """Make ``migration`` (Alembic's MigrationContext, configured, not yet run) run each
    revision of a plugin that declares a convention under that convention."""
    from ..history.manifest import load

    shipped = load()
    conventions = {plugin.name: found for plugin in shipped.plugins
                   if plugin.folder and (found := declared(plugin.folder)) is not None}
    if not conventions:
        return
    produce = migration._migrations_fn

    def steps(heads: Any, context: Any) -> Any:
        found = produce(heads, context)
        for step in found:
            script = getattr(step, "revision", None)  # a RevisionStep's Script
            owner = shipped.owner.get(getattr(script, "revision", None), "")
            if owner in conventions:
                step.migration_fn = _named_by(step.migration_fn, conventions[owner], migration)
        return found

    migration._migrations_fn = steps


def _named_by(function: Any, convention: dict[str, str], migration: Any) -> Any:
    import sqlalchemy as sa

    @functools.wraps(function)
    def run(*args: Any, **kwargs: Any) -> Any:
        before = migration.opts.get("target_metadata")
        migration.opts["target_metadata"] = sa.MetaData(naming_convention=convention)
        try:
            return function(*args, **kwargs)
        finally:
            migration.opts["target_metadata"] = before

    return run
