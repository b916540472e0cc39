"""The declarative base and the MetaData every model registers on."""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from ..naming import NAMING_CONVENTION

# Every constraint gets a stable, predictable name in every dialect (see mypkg.naming).
metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Base(DeclarativeBase):
    metadata = metadata
