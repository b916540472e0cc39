"""widen my_table name

Revision ID: cdc55a093c1f
Revises: 1c639967c1b5
Create Date: 2026-11-24 08:57:29.179658

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'cdc55a093c1f'
down_revision: Union[str, Sequence[str], None] = '1c639967c1b5'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

def _my_table(name_length: int) -> sa.Table:
    return sa.Table(
        "my_table",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(name_length), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_my_table"),
    )


def upgrade() -> None:
    """A type change: SQLite cannot ALTER a column's type, so batch mode copies
    the table (on PostgreSQL it is one ALTER TABLE)."""
    with op.batch_alter_table("my_table", copy_from=_my_table(50)) as batch:
        batch.alter_column(
            "name", existing_type=sa.String(50), type_=sa.String(100), existing_nullable=False
        )


def downgrade() -> None:
    # Fails, and changes nothing, if a name longer than 50 characters was stored since.
    with op.batch_alter_table("my_table", copy_from=_my_table(100)) as batch:
        batch.alter_column(
            "name", existing_type=sa.String(100), type_=sa.String(50), existing_nullable=False
        )
