"""portal processor columns

Revision ID: a7b1c6d5e19f
Revises: f6a0e5b4c18e
Create Date: 2026-12-03 10:45:00.000000

Issue 16: the portal on the processor interface. A payment method records which gateway
saved it, the processor's customer and setup (SetupIntent) it came from, and whether it is
verified (an ACH account waits for micro-deposits; a method removed at the processor is
detached). A charge keeps the processor's own status and when it started waiting for the
payer to authenticate. A refund says whether the portal asked for it or the processor told
us (a Dashboard refund). processor_customers: one processor customer per account and gateway.
"""
import sqlalchemy as sa
from alembic import op

from portal.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = 'a7b1c6d5e19f'
down_revision = 'f6a0e5b4c18e'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('payment_methods', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gateway', sa.String(length=16), server_default='sandbox',
                                      nullable=False))
        batch_op.add_column(sa.Column('customer_ref', sa.String(length=64), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('setup_reference', sa.String(length=64),
                                      server_default='', nullable=False))
        batch_op.add_column(sa.Column(
            'verification',
            sa.Enum('verified', 'pending', 'failed', 'detached', name='methodverification',
                    native_enum=False, create_constraint=True, length=24),
            server_default='verified', nullable=False))
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('processor_status', sa.String(length=24),
                                      server_default='', nullable=False))
        batch_op.add_column(sa.Column('action_required_at', UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.create_index('ix_charges_gateway_reference', ['gateway_reference'],
                              unique=False)
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            'source',
            sa.Enum('portal', 'processor', name='refundsource', native_enum=False,
                    create_constraint=True, length=24),
            server_default='portal', nullable=False))
        batch_op.create_index('ix_refunds_gateway_reference', ['gateway_reference'],
                              unique=False)
    op.create_table(
        'processor_customers',
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('gateway', sa.String(length=16), nullable=False),
        sa.Column('customer_ref', sa.String(length=64), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_processor_customers_account_id_accounts')),
        sa.PrimaryKeyConstraint('account_id', 'gateway', name=op.f('pk_processor_customers')),
    )


def downgrade():
    op.drop_table('processor_customers')
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index('ix_refunds_gateway_reference')
        batch_op.drop_column('source')
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.drop_index('ix_charges_gateway_reference')
        batch_op.drop_column('action_required_at')
        batch_op.drop_column('processor_status')
    with op.batch_alter_table('payment_methods', schema=None) as batch_op:
        batch_op.drop_column('verification')
        batch_op.drop_column('setup_reference')
        batch_op.drop_column('customer_ref')
        batch_op.drop_column('gateway')
