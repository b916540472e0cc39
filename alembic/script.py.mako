"""${message}

Revision ID: ${up_revision}
Revises: ${down_revision | comma,n}
Create Date: ${create_date}

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa
${imports if imports else ""}

# revision identifiers, used by Alembic.
revision: str = ${repr(up_revision)}
down_revision: Union[str, Sequence[str], None] = ${repr(down_revision)}
branch_labels: Union[str, Sequence[str], None] = ${repr(branch_labels)}
depends_on: Union[str, Sequence[str], None] = ${repr(depends_on)}
<%
    options = dict(item.split("=", 1) for item in (getattr(config.cmd_opts, "x", None) or []) if "=" in item)
%>
# When a rolling deploy runs it (docs/deploying.md): "pre", while the old release still runs
# (additive changes), or "post", once no node runs it (drops, renames' second half, NOT NULL).
# alembic -x phase=post revision -m "..." writes "post".
phase: str = ${repr(options.get("phase", "pre"))}


def upgrade() -> None:
    """Upgrade schema."""
    ${upgrades if upgrades else "pass"}


def downgrade() -> None:
    """Downgrade schema."""
    ${downgrades if downgrades else "pass"}
