"""A corpus of Alembic histories, generated in code, written as other teams write them.

Each history is a list of revision scripts (a relative file name and its text): merges
formatted by black or typed as Alembic 1.13's template types them, labelled branches
left unmerged, ``depends_on`` a label, a branch created and merged long ago, constraints
left unnamed for the naming convention to name (and later dropped by that name), batch
operations, a data migration, a file in a subfolder and file names unrelated to the ids.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from typing import NamedTuple

from tests.conftest import REPO


class Script(NamedTuple):
    filename: str
    text: str


def script(
    filename: str,
    revision: str,
    down: str | tuple[str, ...] | None,
    message: str,
    upgrade: str = "pass",
    downgrade: str = "pass",
    *,
    style: str = "plain",
    labels: tuple[str, ...] | None = None,
    depends_on: str | tuple[str, ...] | None = None,
) -> Script:
    """One revision script. ``style``: ``plain`` (one line each), ``black`` (tuples over
    several lines, trailing commas) or ``typed`` (Alembic 1.13's annotated template)."""
    if style == "plain":
        header = (
            f"revision = {revision!r}\ndown_revision = {down!r}\n"
            f"branch_labels = {labels!r}\ndepends_on = {depends_on!r}\n"
        )
    else:
        def literal(value: object) -> str:
            if isinstance(value, tuple):
                inner = "".join(f'    "{item}",\n' for item in value)
                return f"(\n{inner})"
            return "None" if value is None else f'"{value}"'

        note = ": Union[str, Sequence[str], None]" if style == "typed" else ""
        header = (
            f'revision{": str" if style == "typed" else ""} = "{revision}"\n'
            f"down_revision{note} = {literal(down)}\n"
            f"branch_labels{note} = {literal(labels)}\n"
            f"depends_on{note} = {literal(depends_on)}\n"
        )
    imports = "from typing import Sequence, Union\n\n" if style == "typed" else ""
    text = (
        f'"""{message}\n\nRevision ID: {revision}\nRevises: {down}\n"""\n'
        f"{imports}import sqlalchemy as sa\nfrom alembic import op\n\n{header}\n\n"
        f"def upgrade() -> None:\n{textwrap.indent(textwrap.dedent(upgrade).strip(), '    ')}\n\n\n"
        f"def downgrade() -> None:\n{textwrap.indent(textwrap.dedent(downgrade).strip(), '    ')}\n"
    )
    return Script(filename, text)


def black_merge() -> list[Script]:
    """Two branches from one root, merged by a black-formatted revision; then a revision
    that drops an unnamed unique constraint by the name the convention gave it."""
    return [
        script("1_root.py", "aa0000000001", None, "probe table",
               """
               op.create_table(
                   "probe",
                   sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("code", sa.String(20), nullable=False),
                   sa.UniqueConstraint("code"),
               )
               """, 'op.drop_table("probe")'),
        script("2_left.py", "aa0000000002", "aa0000000001", "left branch",
               """
               op.create_table(
                   "left_t",
                   sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("probe_id", sa.Integer, sa.ForeignKey("probe.id"), nullable=False),
               )
               """, 'op.drop_table("left_t")'),
        script("3_right.py", "aa0000000003", "aa0000000001", "right branch",
               """
               op.create_table(
                   "right_t",
                   sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("value", sa.Integer, nullable=False),
                   sa.CheckConstraint("value > 0", name="positive"),
               )
               """, 'op.drop_table("right_t")', style="black"),
        script("4_merge.py", "aa0000000004", ("aa0000000002", "aa0000000003"), "merge left and right",
               style="black"),
        script("5_drop_unique.py", "aa0000000005", "aa0000000004", "drop the unnamed unique on probe.code",
               """
               with op.batch_alter_table("probe") as batch:
                   batch.drop_constraint("uq_probe_code", type_="unique")
                   batch.create_index(None, ["code"])
               """,
               """
               with op.batch_alter_table("probe") as batch:
                   batch.drop_index("ix_probe_code")
                   batch.create_unique_constraint(None, ["code"])
               """),
    ]


def labelled_branches() -> list[Script]:
    """Two labelled branches left unmerged (two heads); one depends on the other's label."""
    return [
        script("accounts_1.py", "bb0000000001", None, "accounts",
               """
               op.create_table(
                   "accounts",
                   sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("name", sa.String(40), nullable=False),
               )
               """, 'op.drop_table("accounts")', style="typed", labels=("accounts",)),
        script("billing_1.py", "bb0000000002", None, "invoices",
               """
               op.create_table(
                   "invoices",
                   sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("total", sa.Numeric(10, 2), nullable=False),
               )
               """, 'op.drop_table("invoices")', style="typed", labels=("billing",)),
        script("accounts_2.py", "bb0000000003", "bb0000000001", "accounts email",
               """
               with op.batch_alter_table("accounts") as batch:
                   batch.add_column(sa.Column("email", sa.String(80), nullable=True))
                   batch.create_unique_constraint(None, ["email"])
               """,
               """
               with op.batch_alter_table("accounts") as batch:
                   batch.drop_constraint("uq_accounts_email", type_="unique")
                   batch.drop_column("email")
               """, style="typed"),
        script("billing_2.py", "bb0000000004", "bb0000000002", "invoice owners, after accounts exist",
               """
               op.create_table(
                   "invoice_owner",
                   sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("invoice_id", sa.Integer, sa.ForeignKey("invoices.id"), nullable=False),
                   sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id"), nullable=False),
               )
               """, 'op.drop_table("invoice_owner")', style="typed", depends_on="accounts"),
    ]


def old_merge(tail: int = 15) -> list[Script]:
    """A branch created and merged long ago, then a long linear history; file names
    that have nothing to do with the ids."""
    scripts = [
        script("0000_start.py", "cc0000000000", None, "start",
               'op.create_table("t_start", sa.Column("id", sa.Integer, primary_key=True))',
               'op.drop_table("t_start")'),
        script("0001_feature_a.py", "cc00000000a1", "cc0000000000", "feature a",
               'op.create_table("t_a", sa.Column("id", sa.Integer, primary_key=True))', 'op.drop_table("t_a")'),
        script("0001_feature_b.py", "cc00000000b1", "cc0000000000", "feature b",
               'op.create_table("t_b", sa.Column("id", sa.Integer, primary_key=True))', 'op.drop_table("t_b")'),
        script("0002_merge.py", "cc0000000002", ("cc00000000a1", "cc00000000b1"), "merge a and b", style="black"),
    ]
    down = "cc0000000002"
    for number in range(tail):
        revision = f"cc{number + 3:010d}"
        scripts.append(
            script(f"{number + 3:04d}_step.py", revision, down, f"step {number}",
                   f'op.create_table("t_{number}", sa.Column("id", sa.Integer, primary_key=True))',
                   f'op.drop_table("t_{number}")')
        )
        down = revision
    return scripts


def naming_batch_data() -> list[Script]:
    """Unnamed constraints, a data migration, batch alterations that drop constraints by
    their convention names, and a revision in a subfolder of versions/."""
    return [
        script("x_create.py", "dd0000000001", None, "category and item",
               """
               op.create_table(
                   "category",
                   sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("label", sa.String(30), nullable=False, unique=True),
               )
               op.create_table(
                   "item",
                   sa.Column("id", sa.Integer, primary_key=True),
                   sa.Column("name", sa.String(50), nullable=False),
                   sa.Column("sku", sa.String(20), nullable=False),
                   sa.Column("qty", sa.Integer, nullable=False, server_default="0"),
                   sa.Column("category_id", sa.Integer, sa.ForeignKey("category.id"), nullable=True),
                   sa.UniqueConstraint("sku"),
               )
               """,
               """
               op.drop_table("item")
               op.drop_table("category")
               """),
        script("y_data.py", "dd0000000002", "dd0000000001", "seed categories and items",
               """
               category = sa.table("category", sa.column("id", sa.Integer), sa.column("label", sa.String))
               item = sa.table("item", sa.column("name", sa.String), sa.column("sku", sa.String),
                               sa.column("category_id", sa.Integer))
               op.bulk_insert(category, [{"id": 1, "label": "tools"}, {"id": 2, "label": "toys"}])
               op.bulk_insert(item, [{"name": "hammer", "sku": "H1", "category_id": 1},
                                     {"name": "ball", "sku": "B1", "category_id": 2}])
               op.execute("UPDATE item SET qty = 5 WHERE sku = 'H1'")
               """,
               """
               op.execute("DELETE FROM item")
               op.execute("DELETE FROM category")
               """),
        script("z_batch.py", "dd0000000003", "dd0000000002", "widen name, rename the convention's constraints",
               """
               with op.batch_alter_table("item") as batch:
                   batch.alter_column("name", type_=sa.String(120), existing_nullable=False)
                   batch.drop_constraint("uq_item_sku", type_="unique")
                   batch.drop_constraint("fk_item_category_id_category", type_="foreignkey")
                   batch.create_foreign_key(None, "category", ["category_id"], ["id"], ondelete="SET NULL")
                   batch.create_check_constraint("qty_not_negative", "qty >= 0")
               """,
               """
               with op.batch_alter_table("item") as batch:
                   batch.drop_constraint(op.f("ck_item_qty_not_negative"), type_="check")  # already named
                   batch.drop_constraint("fk_item_category_id_category", type_="foreignkey")
                   batch.create_foreign_key(None, "category", ["category_id"], ["id"])
                   batch.create_unique_constraint(None, ["sku"])
                   batch.alter_column("name", type_=sa.String(50), existing_nullable=False)
               """),
        script("later/w_index.py", "dd0000000004", "dd0000000003", "index item names",
               'op.create_index(None, "item", ["name"])', 'op.drop_index("ix_item_name", table_name="item")'),
    ]


CORPUS = {
    "black_merge": black_merge,
    "labelled_branches": labelled_branches,
    "old_merge": old_merge,
    "naming_batch_data": naming_batch_data,
}


def write(versions: Path, scripts: list[Script]) -> None:
    """Replace every script under ``versions`` with ``scripts``."""
    if versions.exists():
        shutil.rmtree(versions)
    versions.mkdir(parents=True)
    for item in scripts:
        path = versions / item.filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(item.text)


def project_with(root: Path, scripts: list[Script]) -> Path:
    """A source checkout (package, alembic/, alembic.ini) whose history is ``scripts``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "mypkg", root / "mypkg", ignore=ignore)
    shutil.copytree(REPO / "alembic", root / "alembic", ignore=ignore)
    shutil.copy(REPO / "alembic.ini", root / "alembic.ini")
    (root / "mypkg" / "releases.py").write_text(
        (REPO / "mypkg" / "releases.py").read_text().replace('"0.1.0": "1341fe34ff84",', "")
    )
    write(root / "alembic" / "versions", scripts)
    return root
