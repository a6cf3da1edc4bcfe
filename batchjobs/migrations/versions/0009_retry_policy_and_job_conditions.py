"""Retry policies (delay, backoff, cap, exception classes) and conditions on other jobs

``tasks.retry_delay``/``retry_backoff``/``retry_max_delay``/``retry_on``: a task's retry
policy; ``tasks.not_before``: a delayed retry waits in the database until then, outside
the feeders' index (``ix_tasks_unqueued`` now excludes it) and found by
``ix_tasks_delayed``. ``job_conditions``: a task waits on another job's outcome.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import batchjobs.models

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

OLD_UNQUEUED = sa.text("status = 'ready' AND NOT queued AND NOT client")
UNQUEUED = sa.text("status = 'ready' AND NOT queued AND NOT client AND not_before IS NULL")
DELAYED = sa.text("status = 'ready' AND not_before IS NOT NULL")


def upgrade() -> None:
    op.add_column('tasks', sa.Column('retry_delay', sa.Float(), nullable=True))
    op.add_column('tasks', sa.Column('retry_backoff', sa.Float(), nullable=True))
    op.add_column('tasks', sa.Column('retry_max_delay', sa.Float(), nullable=True))
    op.add_column('tasks', sa.Column('retry_on', sa.JSON(), nullable=True))
    op.add_column('tasks', sa.Column('not_before', batchjobs.models.UTCDateTime(timezone=True),
                                     nullable=True))
    op.drop_index('ix_tasks_unqueued', table_name='tasks')
    op.create_index('ix_tasks_unqueued', 'tasks', ['group_name', 'ready_at', 'id'],
                    unique=False, postgresql_where=UNQUEUED, sqlite_where=UNQUEUED)
    op.create_index('ix_tasks_delayed', 'tasks', ['not_before'], unique=False,
                    postgresql_where=DELAYED, sqlite_where=DELAYED)
    op.create_table(
        'job_conditions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('task_id', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('after_job_id', sa.Integer(), nullable=False),
        sa.Column('expected', sa.String(length=16), nullable=False),
        sa.Column('counted_run', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'],
                                name=op.f('fk_job_conditions_job_id_jobs'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_job_conditions')))
    op.create_index(op.f('ix_job_conditions_job_id'), 'job_conditions', ['job_id'],
                    unique=False)
    op.create_index(op.f('ix_job_conditions_after_job_id'), 'job_conditions',
                    ['after_job_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_job_conditions_after_job_id'), table_name='job_conditions')
    op.drop_index(op.f('ix_job_conditions_job_id'), table_name='job_conditions')
    op.drop_table('job_conditions')
    op.drop_index('ix_tasks_delayed', table_name='tasks')
    op.drop_index('ix_tasks_unqueued', table_name='tasks')
    op.create_index('ix_tasks_unqueued', 'tasks', ['group_name', 'ready_at', 'id'],
                    unique=False, postgresql_where=OLD_UNQUEUED, sqlite_where=OLD_UNQUEUED)
    with op.batch_alter_table('tasks') as batch:
        for column in ('not_before', 'retry_on', 'retry_max_delay', 'retry_backoff',
                       'retry_delay'):
            batch.drop_column(column)
