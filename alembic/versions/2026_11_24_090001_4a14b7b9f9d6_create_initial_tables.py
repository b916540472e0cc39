"""create initial tables

Revision ID: 4a14b7b9f9d6
Revises:
Create Date: 2026-11-24 08:57:27.759767

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '4a14b7b9f9d6'
down_revision: Union[str, Sequence[str], None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

def upgrade() -> None:
    """The seed tutorial's first table."""
    op.create_table(
        "my_table",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(50), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_my_table"),
    )


def downgrade() -> None:
    op.drop_table("my_table")
