"""console contacts: import jobs, and the indexes the contacts pages page and search on

Revision ID: 0007_console_contacts
Revises: 0001 (depends on 0003, the campaigns tables)
Create Date: 2026-12-02 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_console_contacts'
down_revision = '0001'
branch_labels = ('console_contacts',)
depends_on = ('0003',)  # contact_list_members


def upgrade() -> None:
    op.create_table('console_import_jobs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('actor', sa.String(length=254), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('size_bytes', sa.Integer(), nullable=False),
    sa.Column('list_name', sa.String(length=100), nullable=True),
    sa.Column('atomic', sa.Boolean(), nullable=False),
    sa.Column('encoding', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('duplicates', sa.Integer(), nullable=False),
    sa.Column('written', sa.Boolean(), nullable=False),
    sa.Column('rejects', sa.JSON(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_console_import_jobs_tenant', 'console_import_jobs', ['tenant_id', 'created_at'])
    # The contacts page pages by (sort value, id) within a tenant: newest/oldest, name, number.
    op.create_index('ix_contacts_tenant_id_id', 'contacts', ['tenant_id', 'id'])
    op.create_index('ix_contacts_tenant_name', 'contacts',
                    ['tenant_id', sa.text("coalesce(name, '')"), 'id'])
    # Number prefix search ("+86138...") on PostgreSQL needs pattern ops under a non-C collation;
    # SQLite's LIKE uses uq_contact (tenant_id, msisdn) as it is.
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("CREATE INDEX ix_contacts_tenant_msisdn_pattern ON contacts "
                   "(tenant_id, msisdn varchar_pattern_ops)")
    # "Lists of this contact" and deleting a contact's memberships look members up by contact.
    op.create_index('ix_contact_list_members_contact', 'contact_list_members', ['contact_id'])
    # The consent log lists a tenant's opt-out changes newest first.
    op.create_index('ix_opt_outs_tenant_updated', 'opt_outs', ['tenant_id', 'updated_at'])


def downgrade() -> None:
    op.drop_index('ix_opt_outs_tenant_updated', table_name='opt_outs')
    op.drop_index('ix_contact_list_members_contact', table_name='contact_list_members')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP INDEX ix_contacts_tenant_msisdn_pattern")
    op.drop_index('ix_contacts_tenant_name', table_name='contacts')
    op.drop_index('ix_contacts_tenant_id_id', table_name='contacts')
    op.drop_index('ix_console_import_jobs_tenant', table_name='console_import_jobs')
    op.drop_table('console_import_jobs')
