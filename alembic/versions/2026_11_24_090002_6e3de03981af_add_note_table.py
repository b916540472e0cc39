"""add note table

Revision ID: 6e3de03981af
Revises: 4a14b7b9f9d6
Create Date: 2026-11-24 08:57:28.250466

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '6e3de03981af'
down_revision: Union[str, Sequence[str], None] = '4a14b7b9f9d6'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

def upgrade() -> None:
    """A new table that references my_table; its rows go when their parent goes."""
    op.create_table(
        "note",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("my_table_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["my_table_id"],
            ["my_table.id"],
            name="fk_note_my_table_id_my_table",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_note"),
    )


def downgrade() -> None:
    op.drop_table("note")
