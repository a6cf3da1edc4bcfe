"""A large job's count of unfinished tasks spread over several rows

``job_counters (job_id, counter, remaining)``: counters 1… of a job (counter 0 stays
``jobs.remaining``); ``tasks.counter``: which of them counts the task. Every success
used to decrement the job's own row, and an autocommit statement holds that row's lock
across its commit's flush, so the completions of one job queued on one row. Jobs stored
before this revision have every task on counter 0 and no ``job_counters`` rows: they
count as before.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'job_counters',
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('counter', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('remaining', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'],
                                name=op.f('fk_job_counters_job_id_jobs'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('job_id', 'counter', name=op.f('pk_job_counters')))
    op.add_column('tasks', sa.Column('counter', sa.Integer(), nullable=False,
                                     server_default='0'))


def downgrade() -> None:
    # Counter 0 takes the others' counts back: an executing job still ends.
    op.execute("UPDATE jobs SET remaining = remaining + COALESCE((SELECT SUM(c.remaining) "
               "FROM job_counters c WHERE c.job_id = jobs.id), 0)")
    with op.batch_alter_table('tasks') as batch:
        batch.drop_column('counter')
    op.drop_table('job_counters')
