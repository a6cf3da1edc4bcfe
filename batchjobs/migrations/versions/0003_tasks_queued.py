"""tasks.queued: ready tasks kept off the queue until it has room

A job that starts with more ready tasks than a queue is kept at publishes only that
many; the rest stay ready and unqueued, and housekeepers publish them as the queue
drains. Ready tasks of existing jobs were published when they became ready.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

UNQUEUED = sa.text("status = 'ready' AND NOT queued AND NOT client")


def upgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('queued', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.execute("UPDATE tasks SET queued = (status = 'ready')")
    op.create_index('ix_tasks_unqueued', 'tasks', ['group_name', 'ready_at'], unique=False,
                    postgresql_where=UNQUEUED, sqlite_where=UNQUEUED)


def downgrade() -> None:
    op.drop_index('ix_tasks_unqueued', table_name='tasks')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('queued')
