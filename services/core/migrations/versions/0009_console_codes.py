"""console codes: code batches generated from the console (progress, the printable file held
sealed until its one download, revocation), and an index of codes by batch for its statistics

Revision ID: 0009_console_codes
Revises: 0001 (depends on 0002, the schemes tables)
Create Date: 2026-12-03 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0009_console_codes'
down_revision = '0001'
branch_labels = ('console_codes',)
depends_on = ('0002',)  # code_batches, codes


def upgrade() -> None:
    op.create_table('console_code_batches',
    sa.Column('batch_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('actor', sa.String(length=254), nullable=False),
    sa.Column('requested', sa.Integer(), nullable=False),
    sa.Column('generated', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('file_kind', sa.String(length=8), nullable=True),
    sa.Column('downloaded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('downloaded_by', sa.String(length=254), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.String(length=254), nullable=True),
    sa.Column('stats_at_revoke', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['batch_id'], ['code_batches.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('batch_id')
    )
    op.create_index('ix_console_code_batches_tenant', 'console_code_batches',
                    ['tenant_id', 'batch_id'], unique=False)
    op.create_table('console_code_file_parts',
    sa.Column('batch_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('seq', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['console_code_batches.batch_id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('batch_id', 'seq')
    )
    # A batch's statistics and revocation read its codes: without this, a scan of every code.
    op.create_index('ix_codes_batch', 'codes', ['batch_id'], unique=False)
    # The batches page lists a tenant's batches newest first.
    op.create_index('ix_code_batches_tenant_batch', 'code_batches', ['tenant_id', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_code_batches_tenant_batch', table_name='code_batches')
    op.drop_index('ix_codes_batch', table_name='codes')
    op.drop_table('console_code_file_parts')
    op.drop_index('ix_console_code_batches_tenant', table_name='console_code_batches')
    op.drop_table('console_code_batches')
