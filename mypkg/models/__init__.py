"""The schema, as SQLAlchemy 2.0 typed declarative models.

The migrations under ``alembic/versions/`` must build exactly this schema:
``mypkg-migrate check`` and the test suite compare the two. Every model module is
imported here, so ``from mypkg.models import metadata`` (what env.py does) sees
every table.
"""

from .base import NAMING_CONVENTION, Base, metadata
from .my_table import MyTable
from .note import Note

__all__ = ["NAMING_CONVENTION", "Base", "MyTable", "Note", "metadata"]
