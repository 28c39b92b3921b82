"""bridge: webhook endpoints and deliveries, inbound messages for replies, metric windows

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-29 10:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0001'
branch_labels = ('bridge',)
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('webhook_endpoints',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('secret_sealed', sa.Text(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenants.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('tenant_id')
    )
    op.create_table('webhook_deliveries',
    sa.Column('id', BIGID, autoincrement=True, nullable=False),
    sa.Column('endpoint_id', sa.Integer(), nullable=False),
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('event_type', sa.String(length=32), nullable=False),
    sa.Column('ordering_key', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('endpoint_id', 'event_id', name='uq_webhook_delivery_event')
    )
    op.create_index('ix_webhook_deliveries_queue', 'webhook_deliveries',
                    ['status', 'ordering_key', 'id'], unique=False)
    op.create_index('ix_webhook_deliveries_tenant', 'webhook_deliveries',
                    ['tenant_id', 'status', 'id'], unique=False)
    op.create_table('bridge_inbound',
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('subscriber', sa.String(length=16), nullable=False),
    sa.Column('number', sa.String(length=16), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('message_id')
    )
    op.create_index('ix_bridge_inbound_recorded_at', 'bridge_inbound', ['recorded_at'], unique=False)
    op.create_table('metric_messages',
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.Column('product', sa.String(length=64), nullable=False),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('message_id')
    )
    op.create_index('ix_metric_messages_recorded_at', 'metric_messages', ['recorded_at'], unique=False)
    op.create_table('metric_pending',
    sa.Column('dedupe', sa.String(length=64), nullable=False),
    sa.Column('message_id', sa.String(length=36), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('carrier', sa.String(length=64), nullable=False),
    sa.Column('deltas', sa.Text(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('dedupe')
    )
    op.create_index('ix_metric_pending_message_id', 'metric_pending', ['message_id'], unique=False)
    counters = [sa.Column(name, sa.BigInteger(), nullable=False) for name in (
        'messages_in', 'messages_out', 'sent', 'delivered', 'failed', 'suppressed', 'expired',
        'latency_count')]
    counters.append(sa.Column('latency_sum_ms', sa.Float(), nullable=False))
    counters += [sa.Column(name, sa.BigInteger(), nullable=False) for name in (
        'latency_le_1s', 'latency_le_5s', 'latency_le_30s', 'latency_le_60s', 'latency_le_300s',
        'verifications', 'genuine', 'counterfeit_warnings', 'points_awarded', 'points_awards',
        'redemptions')]
    op.create_table('metric_windows',
    sa.Column('id', BIGID, autoincrement=True, nullable=False),
    sa.Column('granularity', sa.String(length=8), nullable=False),
    sa.Column('window_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('window_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant_id', sa.String(length=63), nullable=False),
    sa.Column('carrier', sa.String(length=64), nullable=False),
    sa.Column('campaign_id', sa.String(length=64), nullable=False),
    sa.Column('product', sa.String(length=64), nullable=False),
    sa.Column('region', sa.String(length=64), nullable=False),
    *counters,
    sa.Column('revision', sa.Integer(), nullable=False),
    sa.Column('emitted_revision', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('granularity', 'window_start', 'tenant_id', 'carrier', 'campaign_id',
                        'product', 'region', name='uq_metric_window')
    )
    op.create_index('ix_metric_windows_due', 'metric_windows',
                    ['window_end', 'emitted_revision', 'revision'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_metric_windows_due', table_name='metric_windows')
    op.drop_table('metric_windows')
    op.drop_index('ix_metric_pending_message_id', table_name='metric_pending')
    op.drop_table('metric_pending')
    op.drop_index('ix_metric_messages_recorded_at', table_name='metric_messages')
    op.drop_table('metric_messages')
    op.drop_index('ix_bridge_inbound_recorded_at', table_name='bridge_inbound')
    op.drop_table('bridge_inbound')
    op.drop_index('ix_webhook_deliveries_tenant', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_queue', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_table('webhook_endpoints')
