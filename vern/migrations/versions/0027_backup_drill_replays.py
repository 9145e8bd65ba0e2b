"""restore drills record the product databases' replays

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-06 11:05:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0027'
down_revision: str | None = '0026'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('backup_drills') as batch:
        batch.add_column(sa.Column('replays', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('backup_drills') as batch:
        batch.drop_column('replays')
