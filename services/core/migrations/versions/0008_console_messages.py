"""console messages and inbox: messages.campaign_id and the search indexes; inbound texts with
what handled them, and conversations

Revision ID: 0008_console_messages
Revises: 0001
Create Date: 2026-12-02 09:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008_console_messages'
down_revision = '0001'
branch_labels = ('console_messages',)
depends_on = None


def upgrade() -> None:
    op.add_column('messages', sa.Column('campaign_id', sa.String(length=64), nullable=True))
    # Campaign messages recorded before this column: their request id is campaign:<id>:<member>.
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("UPDATE messages SET campaign_id = split_part(request_id, ':', 2) "
                   "WHERE source = 'campaigns' AND request_id LIKE 'campaign:%'")
    else:
        op.execute("UPDATE messages SET campaign_id = substr(request_id, 10, "
                   "instr(substr(request_id, 10), ':') - 1) "
                   "WHERE source = 'campaigns' AND request_id LIKE 'campaign:%:%'")
    op.create_index('ix_messages_tenant_accepted', 'messages', ['tenant_id', 'accepted_at', 'id'])
    op.create_index('ix_messages_tenant_recipient', 'messages',
                    ['tenant_id', 'recipient', 'accepted_at', 'id'])
    op.create_index('ix_messages_tenant_status', 'messages',
                    ['tenant_id', 'status', 'accepted_at', 'id'])
    op.create_index('ix_messages_tenant_campaign', 'messages',
                    ['tenant_id', 'campaign_id', 'accepted_at', 'id'])

    op.create_table('inbound_texts',
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('tenant_id', sa.String(length=63), nullable=True),
    sa.Column('sender', sa.String(length=16), nullable=True),
    sa.Column('number', sa.String(length=16), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('handled_by', sa.String(length=48), nullable=True),
    sa.Column('keyword', sa.String(length=64), nullable=True),
    sa.Column('campaign_id', sa.String(length=64), nullable=True),
    sa.Column('reply_message_id', sa.String(length=36), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('message_id')
    )
    op.create_index('ix_inbound_texts_conversation', 'inbound_texts',
                    ['tenant_id', 'sender', 'received_at'])
    op.create_index('ix_inbound_texts_tenant_received', 'inbound_texts',
                    ['tenant_id', 'received_at'])
    op.create_table('inbox_conversations',
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('sender', sa.String(length=16), nullable=False),
    sa.Column('number', sa.String(length=16), nullable=False),
    sa.Column('last_message_id', sa.String(length=36), nullable=False),
    sa.Column('last_text', sa.Text(), nullable=False),
    sa.Column('last_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('tenant_id', 'sender')
    )
    op.create_index('ix_inbox_conversations_recent', 'inbox_conversations',
                    ['tenant_id', 'last_at', 'sender'])


def downgrade() -> None:
    op.drop_index('ix_inbox_conversations_recent', table_name='inbox_conversations')
    op.drop_table('inbox_conversations')
    op.drop_index('ix_inbound_texts_tenant_received', table_name='inbound_texts')
    op.drop_index('ix_inbound_texts_conversation', table_name='inbound_texts')
    op.drop_table('inbound_texts')
    for name in ('ix_messages_tenant_campaign', 'ix_messages_tenant_status',
                 'ix_messages_tenant_recipient', 'ix_messages_tenant_accepted'):
        op.drop_index(name, table_name='messages')
    with op.batch_alter_table('messages') as batch:
        batch.drop_column('campaign_id')
