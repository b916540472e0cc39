"""add display_name to my_table

Revision ID: 1c639967c1b5
Revises: 6e3de03981af
Create Date: 2026-11-24 08:57:28.716601

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '1c639967c1b5'
down_revision: Union[str, Sequence[str], None] = '6e3de03981af'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The table as it stands between the two steps below. Batch mode on SQLite needs
# it to write offline SQL (--sql), where there is no database to reflect.
my_table = sa.Table(
    "my_table",
    sa.MetaData(),
    sa.Column("id", sa.Integer(), nullable=False),
    sa.Column("name", sa.String(50), nullable=False),
    sa.Column("display_name", sa.String(100), nullable=True),
    sa.PrimaryKeyConstraint("id", name="pk_my_table"),
)


def upgrade() -> None:
    """A NOT NULL column on a table that has rows: add it nullable, fill it with
    one set-based UPDATE, then forbid NULL."""
    op.add_column("my_table", sa.Column("display_name", sa.String(100), nullable=True))
    op.execute(
        my_table.update()
        .where(my_table.c.display_name.is_(None))
        .values(display_name=my_table.c.name)
    )
    with op.batch_alter_table("my_table", copy_from=my_table) as batch:
        batch.alter_column("display_name", existing_type=sa.String(100), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("my_table", copy_from=my_table) as batch:
        batch.drop_column("display_name")
