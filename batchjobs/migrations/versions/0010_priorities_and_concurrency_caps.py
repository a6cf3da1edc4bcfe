"""Priorities and concurrency caps: tasks.priority/rank, jobs.priority/max_concurrency,
batch_groups.max_concurrency; ix_tasks_unqueued in priority order; ix_tasks_in_flight

The feeders take the highest rank first, then the oldest, so the rank leads the
unqueued index after the group. A cap counts a job's or group's tasks in flight
(executing, or ready with a message on the broker): a partial index as small as the
queues, whatever the backlog.

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

#: Since 0009 a delayed retry (``not_before``) is outside the feeders' index.
UNQUEUED = sa.text("status = 'ready' AND NOT queued AND NOT client AND not_before IS NULL")
IN_FLIGHT = sa.text("status = 'executing' OR (status = 'ready' AND queued)")


def upgrade() -> None:
    with op.batch_alter_table('tasks') as batch:
        batch.add_column(sa.Column('priority', sa.Integer(), server_default='1', nullable=False))
        batch.add_column(sa.Column('rank', sa.Integer(), server_default='1', nullable=False))
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('priority', sa.Integer(), server_default='1', nullable=False))
        batch.add_column(sa.Column('max_concurrency', sa.Integer(), nullable=True))
    with op.batch_alter_table('batch_groups') as batch:
        batch.add_column(sa.Column('max_concurrency', sa.Integer(), nullable=True))
    op.drop_index('ix_tasks_unqueued', table_name='tasks')
    op.create_index('ix_tasks_unqueued', 'tasks',
                    ['group_name', sa.text('rank DESC'), 'ready_at', 'id'], unique=False,
                    postgresql_where=UNQUEUED, sqlite_where=UNQUEUED)
    op.create_index('ix_tasks_in_flight', 'tasks', ['group_name', 'job_id'], unique=False,
                    postgresql_where=IN_FLIGHT, sqlite_where=IN_FLIGHT)


def downgrade() -> None:
    op.drop_index('ix_tasks_in_flight', table_name='tasks')
    op.drop_index('ix_tasks_unqueued', table_name='tasks')
    op.create_index('ix_tasks_unqueued', 'tasks', ['group_name', 'ready_at', 'id'],
                    unique=False, postgresql_where=UNQUEUED, sqlite_where=UNQUEUED)
    with op.batch_alter_table('batch_groups') as batch:
        batch.drop_column('max_concurrency')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('max_concurrency')
        batch.drop_column('priority')
    with op.batch_alter_table('tasks') as batch:
        batch.drop_column('rank')
        batch.drop_column('priority')
