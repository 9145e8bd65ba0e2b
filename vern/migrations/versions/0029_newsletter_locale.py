"""the language a newsletter subscriber signed up in

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-06 11:30:00.000000

Subscriptions made before this revision have none and are written to in bokmål.
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0029'
down_revision: str | None = '0028'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('consent_newsletter', schema=None) as batch_op:
        batch_op.add_column(sa.Column('locale', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('consent_newsletter', schema=None) as batch_op:
        batch_op.drop_column('locale')
