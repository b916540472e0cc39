"""unique display_name

Revision ID: 78a2efaef9ac
Revises: cdc55a093c1f
Create Date: 2026-11-24 08:57:29.650183

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '78a2efaef9ac'
down_revision: Union[str, Sequence[str], None] = 'cdc55a093c1f'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

def _my_table(*constraints: sa.Constraint) -> sa.Table:
    return sa.Table(
        "my_table",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("display_name", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_my_table"),
        *constraints,
    )


def upgrade() -> None:
    """No two rows may share a display name (SQLite needs batch mode to add it)."""
    with op.batch_alter_table("my_table", copy_from=_my_table()) as batch:
        batch.create_unique_constraint("uq_my_table_display_name", ["display_name"])


def downgrade() -> None:
    unique = sa.UniqueConstraint("display_name", name="uq_my_table_display_name")
    with op.batch_alter_table("my_table", copy_from=_my_table(unique)) as batch:
        batch.drop_constraint("uq_my_table_display_name", type_="unique")
