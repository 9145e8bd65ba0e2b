"""audit: MAC and quarantine of pending records, newest sealed time

Revision ID: 0006
Revises: 0001
Create Date: 2026-12-06 04:10:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mac', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('quarantine', sa.String(length=200), nullable=True))
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sealed_ts', sa.BigInteger(), nullable=False,
                                      server_default='0'))


def downgrade() -> None:
    with op.batch_alter_table('audit_head', schema=None) as batch_op:
        batch_op.drop_column('sealed_ts')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_column('quarantine')
        batch_op.drop_column('mac')
