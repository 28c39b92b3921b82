"""DLQ replay: messages.attempt (a replayed message's second attempt gets its own history ids
and status event ids) and dlq_replays (each dead-lettered record is replayed at most once)

Revision ID: 0012_dlq_replays
Revises: 0001
Create Date: 2026-12-03 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0012_dlq_replays'
down_revision = '0001'
branch_labels = ('dlq_replays',)
depends_on = None


def upgrade() -> None:
    op.add_column('messages', sa.Column('attempt', sa.Integer(), nullable=False, server_default='1'))
    op.create_table(
        'dlq_replays',
        sa.Column('id', sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column('dlq_topic', sa.String(length=249), nullable=False),
        sa.Column('partition', sa.Integer(), nullable=False),
        sa.Column('offset', sa.BigInteger(), nullable=False),
        sa.Column('original_topic', sa.String(length=249), nullable=False),
        sa.Column('tenant_id', sa.String(length=63), nullable=True),
        sa.Column('message_id', sa.String(length=36), nullable=True),
        sa.Column('outcome', sa.String(length=32), nullable=False),
        sa.Column('actor', sa.String(length=254), nullable=False),
        sa.Column('replayed_at', sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint('dlq_topic', 'partition', 'offset', name='uq_dlq_replay_record'),
    )


def downgrade() -> None:
    op.drop_table('dlq_replays')
    op.drop_column('messages', 'attempt')
