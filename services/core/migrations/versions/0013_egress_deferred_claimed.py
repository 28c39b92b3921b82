"""egress: a parked message being sent by a worker is marked claimed, so that a carrier that
takes traffic again pulls forward only the messages still waiting (not those under a lease)

Revision ID: 0013_egress_claimed
Revises: 0005c_egress
Create Date: 2026-12-01 11:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0013_egress_claimed'
down_revision = '0005c_egress'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('egress_deferred') as batch:
        batch.add_column(sa.Column('claimed', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('egress_deferred') as batch:
        batch.drop_column('claimed')
