"""routing: keyword rules unique by what they match; what a text no rule matches gets

Revision ID: 0005b_routing
Revises: 0001
Create Date: 2026-12-01 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005b_routing'
down_revision = '0001'
branch_labels = ('routing',)
depends_on = None


def upgrade() -> None:
    # A pattern rule shared the empty keyword with every other pattern rule, so a tenant could
    # have one per number; a rule is now unique by its keyword and its pattern.
    op.execute("UPDATE keywords SET pattern = '' WHERE pattern IS NULL")
    with op.batch_alter_table('keywords', schema=None) as batch_op:
        batch_op.alter_column('pattern', existing_type=sa.String(length=200), nullable=False,
                              server_default='')
        batch_op.drop_constraint('uq_keyword', type_='unique')
        batch_op.create_unique_constraint('uq_keyword_match',
                                          ['tenant_id', 'number', 'keyword', 'pattern'])
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        # Tenants that exist keep what they had: unmatched texts to their inbox (an ERP may read
        # it from tenant.<id>.inbound without a webhook). New tenants get "auto": the inbox when
        # a webhook takes it, else the help text (services/router).
        batch_op.add_column(sa.Column('unmatched', sa.String(length=8), nullable=False,
                                      server_default='inbox'))
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.alter_column('unmatched', server_default='auto')


def downgrade() -> None:
    with op.batch_alter_table('tenants', schema=None) as batch_op:
        batch_op.drop_column('unmatched')
    with op.batch_alter_table('keywords', schema=None) as batch_op:
        batch_op.drop_constraint('uq_keyword_match', type_='unique')
        batch_op.create_unique_constraint('uq_keyword', ['tenant_id', 'number', 'keyword'])
        batch_op.alter_column('pattern', existing_type=sa.String(length=200), nullable=True,
                              server_default=None)
    op.execute("UPDATE keywords SET pattern = NULL WHERE pattern = ''")
