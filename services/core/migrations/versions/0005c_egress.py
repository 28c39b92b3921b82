"""egress: messages parked while their carriers push back (throttled, unreachable)

Revision ID: 0005c_egress
Revises: 0001
Create Date: 2026-12-01 04:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005c_egress'
down_revision = '0001'
branch_labels = ('egress_deferred',)
depends_on = None


def upgrade() -> None:
    op.create_table('egress_deferred',
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('carriers', sa.Text(), nullable=False),
    sa.Column('submission', sa.Text(), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.Float(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=512), nullable=False),
    sa.Column('parked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('message_id')
    )
    op.create_index('ix_egress_deferred_due_at', 'egress_deferred', ['due_at'])


def downgrade() -> None:
    op.drop_index('ix_egress_deferred_due_at', table_name='egress_deferred')
    op.drop_table('egress_deferred')
