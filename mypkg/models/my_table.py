"""``my_table``: the seed tutorial's first table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base

if TYPE_CHECKING:
    from .note import Note


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
