"""rights: steps in systems outside SQL (HTTP connectors, manual tasks, notices to recipients)

Revision ID: 0015
Revises: 0009
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import vern.core.crypto
import vern.core.db

revision: str = '0015'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('rights_external_steps',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('request_id', sa.String(length=36), nullable=False),
    sa.Column('system', sa.String(length=200), nullable=False),
    sa.Column('via', sa.String(length=16), nullable=False),
    sa.Column('operation', sa.String(length=240), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('idempotency_key', sa.String(length=64), nullable=False),
    sa.Column('owner', sa.String(length=320), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('answer', vern.core.crypto.Encrypted('rights_external_steps.answer'), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('confirmed_by', sa.String(length=36), nullable=True),
    sa.Column('done_at', vern.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reminded_at', vern.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', vern.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', vern.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('org_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'],
                            name=op.f('fk_rights_external_steps_org_id_organisations'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['request_id'], ['rights_requests.id'],
                            name=op.f('fk_rights_external_steps_request_id_rights_requests')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rights_external_steps')),
    sa.UniqueConstraint('request_id', 'system', 'operation',
                        name=op.f('uq_rights_external_steps_request_id_system_operation'))
    )
    with op.batch_alter_table('rights_external_steps', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rights_external_steps_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rights_external_steps_request_id'), ['request_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rights_external_steps_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('rights_external_steps', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rights_external_steps_status'))
        batch_op.drop_index(batch_op.f('ix_rights_external_steps_request_id'))
        batch_op.drop_index(batch_op.f('ix_rights_external_steps_org_id'))
    op.drop_table('rights_external_steps')
