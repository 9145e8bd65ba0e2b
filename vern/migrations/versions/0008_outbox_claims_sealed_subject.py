"""outbox: claimed rows and a sealed subject

Revision ID: 0008
Revises: 0001
Create Date: 2026-12-06 04:10:00

Each sender claims an outbox row before it sends it (``claimed_by``, ``claimed_until``), and the
subject is sealed under the recipient's data key like the body. Subjects written in clear before
this revision (a one-time code among them) are dropped, not kept: a message not yet sent goes out
with a neutral subject.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import vern.core.crypto
import vern.core.db

revision: str = '0008'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', vern.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.drop_column('subject')
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subject', vern.core.crypto.Encrypted('outbox_messages.subject'), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.drop_column('subject')
    with op.batch_alter_table('outbox_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('subject', sa.String(length=300), nullable=False, server_default=''))
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claimed_by')
