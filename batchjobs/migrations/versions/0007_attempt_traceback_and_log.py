"""attempts.traceback and attempts.log: what each attempt's process raised and logged

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('attempts') as batch:
        batch.add_column(sa.Column('traceback', sa.Text(), nullable=True))
        batch.add_column(sa.Column('log', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('attempts') as batch:
        batch.drop_column('log')
        batch.drop_column('traceback')
