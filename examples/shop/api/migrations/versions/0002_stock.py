"""Items gain a stock count (every item starts with 10)."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.add_column("items", sa.Column("stock", sa.Integer, nullable=False, server_default="10"))


def downgrade() -> None:
    op.drop_column("items", "stock")
