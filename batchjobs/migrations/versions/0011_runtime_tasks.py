"""Runtime tasks: tasks a running process adds to its own job

``tasks.spawned_by``: the task whose process added this one (None for a submitted task),
indexed only where set (rerun and the next occurrence remove a run's runtime tasks by it).
``tasks.open_children``: the tasks it added that have not finished yet (it finishes when
they all have); ``tasks.failed_children``: those of them that ended ``error`` without
``ignore_failure`` (any makes it end ``error``). ``ix_tasks_in_flight`` (what a
concurrency cap counts) leaves out a task that only waits for the tasks it added: it
holds no thread, and counting it would keep its own children from a slot.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

SPAWNED = sa.text("spawned_by IS NOT NULL")
IN_FLIGHT_BEFORE = sa.text("status = 'executing' OR (status = 'ready' AND queued)")
IN_FLIGHT = sa.text("(status = 'executing' AND open_children = 0) "
                    "OR (status = 'ready' AND queued)")


def upgrade() -> None:
    op.add_column('tasks', sa.Column('spawned_by', sa.Integer(), nullable=True))
    op.add_column('tasks', sa.Column('open_children', sa.Integer(), nullable=False,
                                     server_default='0'))
    op.add_column('tasks', sa.Column('failed_children', sa.Integer(), nullable=False,
                                     server_default='0'))
    op.create_index('ix_tasks_spawned_by', 'tasks', ['spawned_by'], unique=False,
                    postgresql_where=SPAWNED, sqlite_where=SPAWNED)
    _in_flight(IN_FLIGHT)


def _in_flight(predicate: sa.TextClause) -> None:
    op.drop_index('ix_tasks_in_flight', table_name='tasks')
    op.create_index('ix_tasks_in_flight', 'tasks', ['group_name', 'job_id'], unique=False,
                    postgresql_where=predicate, sqlite_where=predicate)


def downgrade() -> None:
    _in_flight(IN_FLIGHT_BEFORE)
    op.drop_index('ix_tasks_spawned_by', table_name='tasks')
    with op.batch_alter_table('tasks') as batch:
        batch.drop_column('failed_children')
        batch.drop_column('open_children')
        batch.drop_column('spawned_by')
