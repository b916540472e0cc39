"""add audit_event.actor

Revision ID: a0d17e000002
Revises: a0d17e000001
Create Date: 2026-11-30 12:00:02
"""
import sqlalchemy as sa
from alembic import op

revision = "a0d17e000002"
down_revision = "a0d17e000001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_event") as batch:
        batch.add_column(sa.Column("actor", sa.String(100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_event") as batch:
        batch.drop_column("actor")
