"""rights policies: a customer may answer "nobody found" without staff review

Revision ID: 0013
Revises: 0009
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('rights_policies', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('answer_nobody_found', sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table('rights_policies', schema=None) as batch_op:
        batch_op.drop_column('answer_nobody_found')
