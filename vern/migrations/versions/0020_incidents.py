"""incidents: the deviation and breach register, affected customers and their clocks, notices,
timeline and clock warnings

Revision ID: 0020
Revises: 0013
Create Date: 2026-12-06 07:17:44.936112
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import vern.core.crypto
import vern.core.db

revision: str = '0020'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('incidents',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('personal_data', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('occurred_from', vern.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('occurred_to', vern.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('discovered_at', vern.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('aware_at', vern.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('what_happened', sa.Text(), nullable=False),
    sa.Column('how_happened', sa.Text(), nullable=False),
    sa.Column('data_categories', sa.JSON(), nullable=False),
    sa.Column('subject_categories', sa.JSON(), nullable=False),
    sa.Column('subjects_approx', sa.Integer(), nullable=True),
    sa.Column('records_approx', sa.Integer(), nullable=True),
    sa.Column('consequences', sa.Text(), nullable=False),
    sa.Column('measures_taken', sa.Text(), nullable=False),
    sa.Column('measures_proposed', sa.Text(), nullable=False),
    sa.Column('risk', sa.String(length=8), nullable=False),
    sa.Column('data_location', sa.Text(), nullable=False),
    sa.Column('contact', sa.Text(), nullable=False),
    sa.Column('vendor_is_controller', sa.Boolean(), nullable=False),
    sa.Column('authority_reported_at', vern.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('authority_reference', sa.String(length=200), nullable=False),
    sa.Column('authority_late_reason', sa.Text(), nullable=False),
    sa.Column('subjects_told_at', vern.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('exemption', sa.String(length=1), nullable=True),
    sa.Column('exemption_reason', sa.Text(), nullable=False),
    sa.Column('cause', sa.Text(), nullable=False),
    sa.Column('lessons', sa.Text(), nullable=False),
    sa.Column('closed_at', vern.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=36), nullable=True),
    sa.Column('created_at', vern.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=36), nullable=True),
    sa.Column('updated_at', vern.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('org_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_incidents_org_id_organisations'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents')),
    sa.UniqueConstraint('org_id', 'number', name=op.f('uq_incidents_org_id_number'))
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incidents_org_id'), ['org_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_incidents_status'), ['status'], unique=False)

    op.create_table('incident_customers',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('incident_id', sa.String(length=36), nullable=False),
    sa.Column('customer_id', sa.String(length=36), nullable=False),
    sa.Column('notice_hours', sa.Integer(), nullable=False),
    sa.Column('due_at', vern.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('notified_at', vern.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('added_at', vern.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('org_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['organisations.id'], name=op.f('fk_incident_customers_customer_id_organisations')),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_incident_customers_incident_id_incidents')),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_incident_customers_org_id_organisations'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_customers')),
    sa.UniqueConstraint('incident_id', 'customer_id', name=op.f('uq_incident_customers_incident_id_customer_id'))
    )
    with op.batch_alter_table('incident_customers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_customers_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_incident_customers_due_at'), ['due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_incident_customers_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_incident_customers_org_id'), ['org_id'], unique=False)

    op.create_table('incident_events',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('incident_id', sa.String(length=36), nullable=False),
    sa.Column('at', vern.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_user_id', sa.String(length=36), nullable=True),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('org_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_incident_events_incident_id_incidents')),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_incident_events_org_id_organisations'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_events'))
    )
    with op.batch_alter_table('incident_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_events_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_incident_events_org_id'), ['org_id'], unique=False)

    op.create_table('incident_notices',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('incident_id', sa.String(length=36), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('content', sa.JSON(), nullable=False),
    sa.Column('subject_nb', sa.String(length=300), nullable=False),
    sa.Column('subject_en', sa.String(length=300), nullable=False),
    sa.Column('body_nb', sa.Text(), nullable=False),
    sa.Column('body_en', sa.Text(), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('sent_at', vern.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_by', sa.String(length=36), nullable=True),
    sa.Column('acknowledged_at', vern.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=36), nullable=True),
    sa.Column('org_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_incident_notices_incident_id_incidents')),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_incident_notices_org_id_organisations'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_notices')),
    sa.UniqueConstraint('incident_id', 'org_id', 'sequence', name=op.f('uq_incident_notices_incident_id_org_id_sequence'))
    )
    with op.batch_alter_table('incident_notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_notices_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_incident_notices_org_id'), ['org_id'], unique=False)

    op.create_table('incident_warnings',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('incident_id', sa.String(length=36), nullable=False),
    sa.Column('clock', sa.String(length=16), nullable=False),
    sa.Column('customer_id', sa.String(length=36), nullable=True),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('due_at', vern.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('raised_at', vern.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('mails', sa.Integer(), nullable=False),
    sa.Column('org_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'], name=op.f('fk_incident_warnings_incident_id_incidents')),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_incident_warnings_org_id_organisations'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_warnings')),
    sa.UniqueConstraint('key', name=op.f('uq_incident_warnings_key'))
    )
    with op.batch_alter_table('incident_warnings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_warnings_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_incident_warnings_org_id'), ['org_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('incident_warnings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_warnings_org_id'))
        batch_op.drop_index(batch_op.f('ix_incident_warnings_incident_id'))

    op.drop_table('incident_warnings')
    with op.batch_alter_table('incident_notices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_notices_org_id'))
        batch_op.drop_index(batch_op.f('ix_incident_notices_incident_id'))

    op.drop_table('incident_notices')
    with op.batch_alter_table('incident_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_events_org_id'))
        batch_op.drop_index(batch_op.f('ix_incident_events_incident_id'))

    op.drop_table('incident_events')
    with op.batch_alter_table('incident_customers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_customers_org_id'))
        batch_op.drop_index(batch_op.f('ix_incident_customers_incident_id'))
        batch_op.drop_index(batch_op.f('ix_incident_customers_due_at'))
        batch_op.drop_index(batch_op.f('ix_incident_customers_customer_id'))

    op.drop_table('incident_customers')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incidents_status'))
        batch_op.drop_index(batch_op.f('ix_incidents_org_id'))

    op.drop_table('incidents')
