"""job runs, users, alerts and their deliveries, client tasks, attempt runs

Columns added to existing tables get server defaults so older rows stay valid, and
every existing job gets its run 1 in ``job_runs``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import batchjobs.models

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('users',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('created_at', batchjobs.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_users'))
    )
    op.create_table('alerts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('run', sa.Integer(), nullable=False, server_default='1'),
    sa.Column('user', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', batchjobs.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_alerts_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts')),
    sa.UniqueConstraint('job_id', 'run', name='uq_alerts_job_id_run')
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_alerts_user'), ['user'], unique=False)

    op.create_table('job_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('scheduled_at', batchjobs.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', batchjobs.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', batchjobs.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_runs_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs')),
    sa.UniqueConstraint('job_id', 'number', name='uq_job_runs_job_id_number')
    )
    op.create_table('alert_deliveries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('alert_id', sa.Integer(), nullable=False),
    sa.Column('sink', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('tries', sa.Integer(), nullable=False),
    sa.Column('next_try_at', batchjobs.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('sent_at', batchjobs.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['alert_id'], ['alerts.id'], name=op.f('fk_alert_deliveries_alert_id_alerts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_deliveries'))
    )
    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.create_index('ix_alert_deliveries_status_next_try_at', ['status', 'next_try_at'], unique=False)

    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('run', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('message_id', sa.String(length=64), nullable=True))

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recurrence', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('run_number', sa.Integer(), nullable=False, server_default='1'))

    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt_base', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('client', sa.Boolean(), nullable=False, server_default=sa.false()))

    op.execute("INSERT INTO job_runs (job_id, number, kind, scheduled_at, started_at, ended_at, "
               "status, skipped) SELECT id, 1, 'scheduled', run_at, started_at, ended_at, status, 0 "
               "FROM jobs")



def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_column('client')
        batch_op.drop_column('attempt_base')

    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('run_number')
        batch_op.drop_column('recurrence')

    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_column('message_id')
        batch_op.drop_column('run')

    with op.batch_alter_table('alert_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_alert_deliveries_status_next_try_at')

    op.drop_table('alert_deliveries')
    op.drop_table('job_runs')
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_alerts_user'))

    op.drop_table('alerts')
    op.drop_table('users')
