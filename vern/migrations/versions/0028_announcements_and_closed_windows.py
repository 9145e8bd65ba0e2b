"""announcements of published documents; closing of Art. 28(2) objection windows

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 10:50:00.000000

Versions published before this revision count as announced, and objection windows that closed
before it count as closed, so the upgrade sends no mail about the past.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

import vern.core.db

revision: str = '0028'
down_revision: str | None = '0027'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('records_announcements',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('document_id', sa.String(length=36), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('recipients', sa.Integer(), nullable=False),
    sa.Column('announced_at', vern.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('org_id', sa.String(length=36), nullable=False),
    sa.ForeignKeyConstraint(['org_id'], ['organisations.id'], name=op.f('fk_records_announcements_org_id_organisations'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_records_announcements')),
    sa.UniqueConstraint('document_id', name=op.f('uq_records_announcements_document_id'))
    )
    with op.batch_alter_table('records_announcements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_records_announcements_org_id'), ['org_id'], unique=False)
    with op.batch_alter_table('vendor_subprocessor_notices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('closed_at', vern.core.db.UTCDateTime(timezone=True), nullable=True))

    now = datetime.now(UTC)
    bind = op.get_bind()
    docs = sa.table('records_documents', sa.column('id', sa.String), sa.column('org_id', sa.String),
                    sa.column('kind', sa.String), sa.column('version', sa.Integer))
    marks = sa.table('records_announcements', sa.column('id', sa.String),
                     sa.column('document_id', sa.String), sa.column('kind', sa.String),
                     sa.column('version', sa.Integer), sa.column('recipients', sa.Integer),
                     sa.column('announced_at', vern.core.db.UTCDateTime(timezone=True)),
                     sa.column('org_id', sa.String))
    rows = bind.execute(sa.select(docs.c.id, docs.c.org_id, docs.c.kind, docs.c.version)
                        .where(docs.c.kind == 'privacy')).all()
    if rows:
        op.bulk_insert(marks, [{'id': str(uuid.uuid4()), 'document_id': r.id, 'kind': r.kind,
                                'version': r.version, 'recipients': 0, 'announced_at': now,
                                'org_id': r.org_id} for r in rows])
    notices = sa.table('vendor_subprocessor_notices',
                       sa.column('closes_at', vern.core.db.UTCDateTime(timezone=True)),
                       sa.column('closed_at', vern.core.db.UTCDateTime(timezone=True)))
    bind.execute(notices.update().where(notices.c.closes_at <= now).values(closed_at=notices.c.closes_at))


def downgrade() -> None:
    with op.batch_alter_table('vendor_subprocessor_notices', schema=None) as batch_op:
        batch_op.drop_column('closed_at')
    with op.batch_alter_table('records_announcements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_records_announcements_org_id'))
    op.drop_table('records_announcements')
