"""webhooks

Revision ID: b4d9e3f2a87c
Revises: a3c8d2e1f76b
Create Date: 2026-12-03 22:10:00.000000

Issue 18 (W): outgoing webhooks: the endpoints an account registered (secret sealed), the
events written with the changes they tell of (the outbox), one delivery per event and
endpoint (sent and retried by the jobs).
"""
import sqlalchemy as sa
from alembic import op

from portal.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = 'b4d9e3f2a87c'
down_revision = 'a3c8d2e1f76b'
branch_labels = None
depends_on = None

STATUSES = ('pending', 'succeeded', 'failed')


def upgrade():
    op.create_table(
        'webhook_endpoints',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('url', sa.String(length=2048), nullable=False),
        sa.Column('description', sa.String(length=200), server_default='', nullable=False),
        sa.Column('event_types', sa.Text(), nullable=False),
        sa.Column('secret_sealed', sa.Text(), nullable=False),
        sa.Column('previous_secret_sealed', sa.Text(), nullable=True),
        sa.Column('previous_secret_expires_at', UTCDateTime(), nullable=True),
        sa.Column('enabled', sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_webhook_endpoints_account_id_accounts')),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'],
                                name=op.f('fk_webhook_endpoints_created_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_endpoints')),
    )
    op.create_index('ix_webhook_endpoints_account', 'webhook_endpoints', ['account_id', 'id'])
    op.create_table(
        'webhook_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('public_id', sa.String(length=40), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('type', sa.String(length=40), nullable=False),
        sa.Column('payload', sa.Text(), nullable=False),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_webhook_events_account_id_accounts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events')),
        sa.UniqueConstraint('public_id', name=op.f('uq_webhook_events_public_id')),
    )
    op.create_index('ix_webhook_events_account', 'webhook_events', ['account_id', 'id'])
    op.create_index('ix_webhook_events_created', 'webhook_events', ['created_at'])
    op.create_table(
        'webhook_deliveries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=False),
        sa.Column('endpoint_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.Enum(*STATUSES, name='deliverystatus', native_enum=False,
                                    length=24, create_constraint=True), nullable=False),
        sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('next_attempt_at', UTCDateTime(), nullable=True),
        sa.Column('retry_until', UTCDateTime(), nullable=False),
        sa.Column('last_status_code', sa.Integer(), nullable=True),
        sa.Column('last_error', sa.String(length=300), server_default='', nullable=False),
        sa.Column('last_attempt_at', UTCDateTime(), nullable=True),
        sa.Column('delivered_at', UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(['endpoint_id'], ['webhook_endpoints.id'],
                                name=op.f('fk_webhook_deliveries_endpoint_id_webhook_endpoints')),
        sa.ForeignKeyConstraint(['event_id'], ['webhook_events.id'],
                                name=op.f('fk_webhook_deliveries_event_id_webhook_events')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
        sa.UniqueConstraint('event_id', 'endpoint_id',
                            name='uq_webhook_deliveries_event_endpoint'),
    )
    op.create_index('ix_webhook_deliveries_due', 'webhook_deliveries',
                    ['status', 'next_attempt_at', 'id'])
    op.create_index('ix_webhook_deliveries_endpoint', 'webhook_deliveries',
                    ['endpoint_id', 'id'])


def downgrade():
    op.drop_index('ix_webhook_deliveries_endpoint', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_due', table_name='webhook_deliveries')
    op.drop_table('webhook_deliveries')
    op.drop_index('ix_webhook_events_created', table_name='webhook_events')
    op.drop_index('ix_webhook_events_account', table_name='webhook_events')
    op.drop_table('webhook_events')
    op.drop_index('ix_webhook_endpoints_account', table_name='webhook_endpoints')
    op.drop_table('webhook_endpoints')
