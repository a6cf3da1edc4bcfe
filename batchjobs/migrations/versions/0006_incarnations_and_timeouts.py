"""Server incarnations (one live process per name), task timeouts, running attempts indexed

``batch_servers.incarnation``/``host``/``pid``: the start of a server's process that holds
its name, and where it runs; ``attempts.incarnation``: the start that runs an attempt, the
only one whose outcome counts. ``tasks.timeout``: seconds a process may run. The partial
index ``ix_attempts_running`` finds running attempts by server without reading the
attempts' history.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

RUNNING = sa.text("outcome = 'running'")


def upgrade() -> None:
    op.add_column('batch_servers', sa.Column('incarnation', sa.String(length=32), nullable=True))
    op.add_column('batch_servers', sa.Column('host', sa.String(length=255), nullable=True))
    op.add_column('batch_servers', sa.Column('pid', sa.Integer(), nullable=True))
    op.add_column('attempts', sa.Column('incarnation', sa.String(length=32), nullable=True))
    op.add_column('tasks', sa.Column('timeout', sa.Float(), nullable=True))
    op.create_index('ix_attempts_running', 'attempts', ['server'], unique=False,
                    postgresql_where=RUNNING, sqlite_where=RUNNING)


def downgrade() -> None:
    op.drop_index('ix_attempts_running', table_name='attempts')
    with op.batch_alter_table('tasks') as batch:
        batch.drop_column('timeout')
    with op.batch_alter_table('attempts') as batch:
        batch.drop_column('incarnation')
    with op.batch_alter_table('batch_servers') as batch:
        batch.drop_column('pid')
        batch.drop_column('host')
        batch.drop_column('incarnation')
