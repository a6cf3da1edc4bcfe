"""Owners and retention: disabled users, why a job is held, the job audit, duty leases

``users.disabled_at``: a disabled user's jobs no longer start (they are held);
``jobs.hold_reason``: why the system held a job ("owner alice disabled"); ``job_audit``:
who changed a job's run-as user, when, from whom to whom; ``duty_leases``: a duty that one
housekeeper at a time does now and then (retention). Indexes for retention: finished jobs
by end time, deliveries by alert.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from batchjobs.models import UTCDateTime

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('disabled_at', UTCDateTime(), nullable=True))
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('hold_reason', sa.Text(), nullable=True))
    op.create_index('ix_jobs_status_ended_at', 'jobs', ['status', 'ended_at'], unique=False)
    op.create_index('ix_alert_deliveries_alert_id', 'alert_deliveries', ['alert_id'],
                    unique=False)
    op.create_table(
        'job_audit',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('job_id', sa.Integer(), nullable=False),
        sa.Column('at', UTCDateTime(), nullable=False),
        sa.Column('by', sa.String(length=200), nullable=False),
        sa.Column('action', sa.String(length=32), nullable=False),
        sa.Column('from_user', sa.String(length=200), nullable=True),
        sa.Column('to_user', sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name='fk_job_audit_job_id_jobs',
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name='pk_job_audit'),
    )
    op.create_index('ix_job_audit_job_id', 'job_audit', ['job_id'], unique=False)
    op.create_table(
        'duty_leases',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('holder', sa.String(length=200), nullable=True),
        sa.Column('expires_at', UTCDateTime(), nullable=True),
        sa.Column('done_at', UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint('name', name='pk_duty_leases'),
    )


def downgrade() -> None:
    op.drop_table('duty_leases')
    op.drop_index('ix_job_audit_job_id', table_name='job_audit')
    op.drop_table('job_audit')
    op.drop_index('ix_alert_deliveries_alert_id', table_name='alert_deliveries')
    op.drop_index('ix_jobs_status_ended_at', table_name='jobs')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('hold_reason')
    with op.batch_alter_table('users') as batch:
        batch.drop_column('disabled_at')
