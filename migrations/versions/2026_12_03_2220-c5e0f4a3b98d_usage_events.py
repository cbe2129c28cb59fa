"""usage events

Revision ID: c5e0f4a3b98d
Revises: b4d9e3f2a87c
Create Date: 2026-12-03 22:20:00.000000

Issue 18: usage events sent in batches, each accepted once per metered account and event
id, pointing at the ledger entry that debited it.
"""
import sqlalchemy as sa
from alembic import op

from portal.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = 'c5e0f4a3b98d'
down_revision = 'b4d9e3f2a87c'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'usage_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('event_id', sa.String(length=80), nullable=False),
        sa.Column('item', sa.String(length=40), nullable=False),
        sa.Column('quantity', sa.Integer(), nullable=False),
        sa.Column('occurred_at', UTCDateTime(), nullable=False),
        sa.Column('received_at', UTCDateTime(), nullable=False),
        sa.Column('batch', sa.String(length=40), nullable=False),
        sa.Column('api_key_id', sa.Integer(), nullable=True),
        sa.Column('ledger_entry_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_usage_events_account_id_accounts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_events')),
        sa.UniqueConstraint('account_id', 'event_id', name='uq_usage_events_account_event'),
    )
    op.create_index('ix_usage_events_entry', 'usage_events', ['ledger_entry_id'])


def downgrade():
    op.drop_index('ix_usage_events_entry', table_name='usage_events')
    op.drop_table('usage_events')
