"""``note``: free text attached to a row of ``my_table``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base

if TYPE_CHECKING:
    from .my_table import MyTable


class Note(Base):
    """Free text attached to a row of ``my_table``."""

    __tablename__ = "note"
    __table_args__ = (Index("ix_note_my_table_id", "my_table_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    my_table_id: Mapped[int] = mapped_column(ForeignKey("my_table.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)

    item: Mapped[MyTable] = relationship(back_populates="notes")
