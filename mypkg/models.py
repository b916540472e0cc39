"""The schema, as SQLAlchemy 2.0 typed declarative models.

The migrations under ``alembic/versions/`` must build exactly this schema:
``mypkg-migrate check`` and the test suite compare the two.
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Every constraint gets a stable, predictable name in every dialect. SQLite's
# batch mode can only drop or alter constraints it can name, so this has been
# in place since revision 1.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    metadata = metadata


class MyTable(Base):
    """The seed's first table."""

    __tablename__ = "my_table"
    __table_args__ = (UniqueConstraint("display_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    display_name: Mapped[str] = mapped_column(String(100))

    notes: Mapped[list[Note]] = relationship(
        back_populates="item", cascade="all, delete-orphan", passive_deletes=True
    )


class Note(Base):
    """Free text attached to a row of ``my_table``."""

    __tablename__ = "note"
    __table_args__ = (Index("ix_note_my_table_id", "my_table_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    my_table_id: Mapped[int] = mapped_column(ForeignKey("my_table.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)

    item: Mapped[MyTable] = relationship(back_populates="notes")
