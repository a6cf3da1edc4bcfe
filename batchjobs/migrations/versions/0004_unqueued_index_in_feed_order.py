"""ix_tasks_unqueued in the order housekeepers feed: (group_name, ready_at, id)

Feeding a queue takes the oldest unqueued ready tasks of a group, ``ORDER BY ready_at,
id``. The roots of a job started at submit share one ``ready_at``, so with only
``(group_name, ready_at)`` in the index PostgreSQL read and sorted every unqueued task
of the group to pick the first few hundred (10 ms per 30,000). With ``id`` in it, the
scan is in that order and stops at the limit.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

UNQUEUED = sa.text("status = 'ready' AND NOT queued AND NOT client")


def upgrade() -> None:
    op.drop_index('ix_tasks_unqueued', table_name='tasks')
    op.create_index('ix_tasks_unqueued', 'tasks', ['group_name', 'ready_at', 'id'],
                    unique=False, postgresql_where=UNQUEUED, sqlite_where=UNQUEUED)


def downgrade() -> None:
    op.drop_index('ix_tasks_unqueued', table_name='tasks')
    op.create_index('ix_tasks_unqueued', 'tasks', ['group_name', 'ready_at'], unique=False,
                    postgresql_where=UNQUEUED, sqlite_where=UNQUEUED)
