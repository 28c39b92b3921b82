"""contacts: name search by any part of the name on PostgreSQL (trigram index)

The contacts page finds "4242" inside "Contact 4242" or 明 inside 李明华: a contains-match that a
B-tree cannot serve. pg_trgm is a trusted extension (PostgreSQL 13+), so the database's owner can
create it; where it cannot be created the search still works, by scanning.

Revision ID: 0011_contacts_search
Revises: 0001
Create Date: 2026-12-01 03:20:00
"""
from alembic import op


revision = '0011_contacts_search'
down_revision = '0001'
branch_labels = ('contacts_search',)
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    try:
        with bind.begin_nested():
            op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception:  # noqa: BLE001 - no privilege: the search scans instead
        return
    op.execute("CREATE INDEX IF NOT EXISTS ix_contacts_name_trgm ON contacts USING gin (name gin_trgm_ops)")


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("DROP INDEX IF EXISTS ix_contacts_name_trgm")
