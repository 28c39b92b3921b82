"""console lottery: daily caps of prize tiers (a per-day award counter on the tier row, so the
cap holds with a conditional UPDATE like the total cap) and the draws' outcome index

Revision ID: 0010_console_lottery
Revises: 0002
Create Date: 2026-12-01 03:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0010_console_lottery'
down_revision = '0002'
branch_labels = ('console_lottery',)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('prize_tiers') as b:
        b.add_column(sa.Column('daily_cap', sa.Integer(), nullable=True))
        b.add_column(sa.Column('day', sa.String(length=10), nullable=True))
        b.add_column(sa.Column('awarded_today', sa.Integer(), nullable=False, server_default='0'))
    op.create_index('ix_draws_lottery_outcome', 'draws', ['lottery_id', 'outcome', 'id'])


def downgrade() -> None:
    op.drop_index('ix_draws_lottery_outcome', table_name='draws')
    with op.batch_alter_table('prize_tiers') as b:
        b.drop_column('awarded_today')
        b.drop_column('day')
        b.drop_column('daily_cap')
