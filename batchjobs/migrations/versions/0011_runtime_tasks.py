"""Runtime tasks: tasks a running process adds to its own job

``tasks.spawned_by``: the task whose process added this one (None for a submitted task),
indexed only where set (rerun and the next occurrence remove a run's runtime tasks by it).
``tasks.open_children``: the tasks it added that have not finished yet (it finishes when
they all have); ``tasks.failed_children``: those of them that ended ``error`` without
``ignore_failure`` (any makes it end ``error``).

Revision ID: 0011
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0007'
branch_labels = None
depends_on = None

SPAWNED = sa.text("spawned_by IS NOT NULL")


def upgrade() -> None:
    op.add_column('tasks', sa.Column('spawned_by', sa.Integer(), nullable=True))
    op.add_column('tasks', sa.Column('open_children', sa.Integer(), nullable=False,
                                     server_default='0'))
    op.add_column('tasks', sa.Column('failed_children', sa.Integer(), nullable=False,
                                     server_default='0'))
    op.create_index('ix_tasks_spawned_by', 'tasks', ['spawned_by'], unique=False,
                    postgresql_where=SPAWNED, sqlite_where=SPAWNED)


def downgrade() -> None:
    op.drop_index('ix_tasks_spawned_by', table_name='tasks')
    with op.batch_alter_table('tasks') as batch:
        batch.drop_column('failed_children')
        batch.drop_column('open_children')
        batch.drop_column('spawned_by')
