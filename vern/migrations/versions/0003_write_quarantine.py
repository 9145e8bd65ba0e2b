"""write quarantine: records a background writer could not store

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-06 04:00:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import vern.core.db

revision: str = '0003'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('write_quarantine',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('created_at', vern.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('writer', sa.String(length=32), nullable=False),
    sa.Column('org_id', sa.String(length=36), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=False),
    sa.Column('record', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_write_quarantine'))
    )
    with op.batch_alter_table('write_quarantine', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_write_quarantine_created_at'), ['created_at'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_write_quarantine_org_id'), ['org_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('write_quarantine', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_write_quarantine_org_id'))
        batch_op.drop_index(batch_op.f('ix_write_quarantine_created_at'))
    op.drop_table('write_quarantine')
