"""index note my_table_id

Revision ID: 1341fe34ff84
Revises: 78a2efaef9ac
Create Date: 2026-11-24 08:57:30.138150

"""
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = '1341fe34ff84'
down_revision: Union[str, Sequence[str], None] = '78a2efaef9ac'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

INDEX = "ix_note_my_table_id"


def upgrade() -> None:
    """An index on a table that may be large and busy.

    On PostgreSQL it is built CONCURRENTLY, which does not block writes to note
    but cannot run inside a transaction: hence the autocommit block, and hence this
    revision holds nothing else. A build interrupted half way leaves an INVALID
    index behind, so any leftover is dropped first.
    """
    if op.get_context().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index(INDEX, table_name="note", postgresql_concurrently=True, if_exists=True)
            op.create_index(INDEX, "note", ["my_table_id"], postgresql_concurrently=True)
    else:
        op.create_index(INDEX, "note", ["my_table_id"])


FOREIGN_KEY = "fk_note_my_table_id_my_table"


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index(INDEX, table_name="note", postgresql_concurrently=True, if_exists=True)
    elif dialect in ("mysql", "mariadb"):
        # InnoDB took this index over for the foreign key (and dropped the one it had made
        # for it): the key goes while the index goes, then comes back with an index of its own.
        op.drop_constraint(FOREIGN_KEY, "note", type_="foreignkey")
        op.drop_index(INDEX, table_name="note")
        op.create_foreign_key(FOREIGN_KEY, "note", "my_table", ["my_table_id"], ["id"], ondelete="CASCADE")
    else:
        op.drop_index(INDEX, table_name="note")
