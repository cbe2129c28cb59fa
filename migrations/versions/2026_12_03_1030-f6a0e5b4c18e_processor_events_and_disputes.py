"""processor events and disputes

Revision ID: f6a0e5b4c18e
Revises: e5f9d4a3b17d
Create Date: 2026-12-03 10:30:00.000000

Issue 16: the processor's webhooks. Each event applied is kept by its id (processor_events:
a second delivery does nothing), disputes on charges (disputes), and the ledger's kinds gain
`dispute` (the processor took a disputed payment back) and `dispute_reversal` (it was won).
"""
import sqlalchemy as sa
from alembic import op

from portal.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = 'f6a0e5b4c18e'
down_revision = 'e5f9d4a3b17d'
branch_labels = None
depends_on = None

LEDGER_KINDS = ("payment", "recharge", "usage", "plan_fee", "tax", "transfer_in",
                "transfer_out", "refund", "adjustment")
NEW_LEDGER_KINDS = ("dispute", "dispute_reversal")


def _ledger_kinds_check(kinds):
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_ledger_entries_ledgerkind'), type_='check')
        batch_op.create_check_constraint(
            op.f('ck_ledger_entries_ledgerkind'),
            "kind IN (" + ", ".join(f"'{k}'" for k in kinds) + ")")


def upgrade():
    _ledger_kinds_check(LEDGER_KINDS + NEW_LEDGER_KINDS)
    op.create_table(
        'processor_events',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('gateway', sa.String(length=16), nullable=False),
        sa.Column('type', sa.String(length=64), nullable=False),
        sa.Column('object_ref', sa.String(length=64), nullable=False),
        sa.Column('outcome', sa.String(length=32), nullable=False),
        sa.Column('received_at', UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_processor_events')),
    )
    with op.batch_alter_table('processor_events', schema=None) as batch_op:
        batch_op.create_index('ix_processor_events_received_at', ['received_at'], unique=False)
    op.create_table(
        'disputes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('charge_id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('reference', sa.String(length=64), nullable=False),
        sa.Column('amount_cents', sa.BigInteger(), nullable=False),
        sa.Column('reason', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=32), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('closed_at', UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_disputes_account_id_accounts')),
        sa.ForeignKeyConstraint(['charge_id'], ['charges.id'],
                                name=op.f('fk_disputes_charge_id_charges')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_disputes')),
        sa.UniqueConstraint('reference', name=op.f('uq_disputes_reference')),
    )
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_disputes_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_disputes_charge_id'), ['charge_id'], unique=False)


def downgrade():
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_disputes_charge_id'))
        batch_op.drop_index(batch_op.f('ix_disputes_account_id'))
    op.drop_table('disputes')
    with op.batch_alter_table('processor_events', schema=None) as batch_op:
        batch_op.drop_index('ix_processor_events_received_at')
    op.drop_table('processor_events')
    # Refused (the CHECK fails) while disputes are on a ledger: those entries are money.
    _ledger_kinds_check(LEDGER_KINDS)
