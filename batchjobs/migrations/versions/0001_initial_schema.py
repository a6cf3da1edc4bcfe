"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import batchjobs.models

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('batch_groups',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', batchjobs.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_batch_groups'))
    )
    op.create_table('batch_servers',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('threads', sa.Integer(), nullable=False),
    sa.Column('timezone', sa.String(length=64), nullable=False),
    sa.Column('schedule', sa.JSON(), nullable=False),
    sa.Column('created_at', batchjobs.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', batchjobs.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('applied_groups', sa.JSON(), nullable=False),
    sa.Column('applied_threads', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_batch_servers'))
    )
    op.create_table('jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('alert', sa.String(length=16), nullable=False),
    sa.Column('company', sa.String(length=100), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', batchjobs.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('run_at', batchjobs.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('started_at', batchjobs.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('ended_at', batchjobs.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('task_count', sa.Integer(), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs'))
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_jobs_status'), ['status'], unique=False)
        batch_op.create_index('ix_jobs_status_run_at', ['status', 'run_at'], unique=False)

    op.create_table('server_groups',
    sa.Column('server_name', sa.String(length=200), nullable=False),
    sa.Column('group_name', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['group_name'], ['batch_groups.name'], name=op.f('fk_server_groups_group_name_batch_groups')),
    sa.ForeignKeyConstraint(['server_name'], ['batch_servers.name'], name=op.f('fk_server_groups_server_name_batch_servers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('server_name', 'group_name', name=op.f('pk_server_groups'))
    )
    op.create_table('tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('process', sa.String(length=300), nullable=False),
    sa.Column('kwargs', sa.JSON(), nullable=False),
    sa.Column('group_name', sa.String(length=100), nullable=False),
    sa.Column('company', sa.String(length=100), nullable=True),
    sa.Column('retries', sa.Integer(), nullable=False),
    sa.Column('ignore_failure', sa.Boolean(), nullable=False),
    sa.Column('condition_type', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('n_conditions', sa.Integer(), nullable=False),
    sa.Column('met', sa.Integer(), nullable=False),
    sa.Column('unmet', sa.Integer(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('ready_at', batchjobs.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('run_as', sa.String(length=200), nullable=False),
    sa.Column('dependents', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_tasks_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks')),
    sa.UniqueConstraint('job_id', 'name', name='uq_tasks_job_id_name')
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_job_id_status', ['job_id', 'status'], unique=False)
        batch_op.create_index('ix_tasks_status_ready_at', ['status', 'ready_at'], unique=False)

    op.create_table('attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('server', sa.String(length=200), nullable=False),
    sa.Column('company', sa.String(length=100), nullable=True),
    sa.Column('user', sa.String(length=200), nullable=False),
    sa.Column('started_at', batchjobs.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('ended_at', batchjobs.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_attempts_task_id_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attempts')),
    sa.UniqueConstraint('task_id', 'number', name='uq_attempts_task_id_number')
    )
    op.create_table('conditions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=False),
    sa.Column('parent_id', sa.Integer(), nullable=False),
    sa.Column('expected', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['tasks.id'], name=op.f('fk_conditions_parent_id_tasks'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['task_id'], ['tasks.id'], name=op.f('fk_conditions_task_id_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_conditions'))
    )
    with op.batch_alter_table('conditions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conditions_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_conditions_task_id'), ['task_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('conditions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conditions_task_id'))
        batch_op.drop_index(batch_op.f('ix_conditions_parent_id'))

    op.drop_table('conditions')
    op.drop_table('attempts')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_status_ready_at')
        batch_op.drop_index('ix_tasks_job_id_status')

    op.drop_table('tasks')
    op.drop_table('server_groups')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_status_run_at')
        batch_op.drop_index(batch_op.f('ix_jobs_status'))

    op.drop_table('jobs')
    op.drop_table('batch_servers')
    op.drop_table('batch_groups')
