"""The items table, with the shop's first two items."""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    items = op.create_table(
        "items",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("price", sa.Numeric(8, 2), nullable=False),
    )
    op.bulk_insert(items, [{"name": "tea", "price": 3.5}, {"name": "coffee", "price": 4.0}])


def downgrade() -> None:
    op.drop_table("items")
