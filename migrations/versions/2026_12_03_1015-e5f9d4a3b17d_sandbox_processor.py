"""sandbox processor

Revision ID: e5f9d4a3b17d
Revises: d4e8c3f2a16c
Create Date: 2026-12-03 10:15:00.000000

Issue 16: the sandbox as a processor with its own card-entry form. Its payment methods
(pm_sbx_…, never a card or account number) and setup intents (seti_sbx_…); its charges gain
a status (backfilled from succeeded), the customer, whether off-session, and the client
secret of a payment waiting for authentication.
"""
import sqlalchemy as sa
from alembic import op

from portal.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = 'e5f9d4a3b17d'
down_revision = 'd4e8c3f2a16c'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'sandbox_payment_methods',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('behaviour', sa.String(length=32), nullable=False),
        sa.Column('brand', sa.String(length=32), nullable=False),
        sa.Column('last4', sa.String(length=4), nullable=False),
        sa.Column('exp_month', sa.Integer(), nullable=True),
        sa.Column('exp_year', sa.Integer(), nullable=True),
        sa.Column('holder', sa.String(length=200), nullable=False),
        sa.Column('bank_name', sa.String(length=64), server_default='', nullable=False),
        sa.Column('customer', sa.String(length=40), server_default='', nullable=False),
        sa.Column('authenticated', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('detached', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_payment_methods')),
    )
    op.create_table(
        'sandbox_setups',
        sa.Column('id', sa.String(length=40), nullable=False),
        sa.Column('idempotency_key', sa.String(length=120), nullable=False),
        sa.Column('client_secret', sa.String(length=80), nullable=False),
        sa.Column('customer', sa.String(length=40), nullable=False),
        sa.Column('payment_method', sa.String(length=40), nullable=False),
        sa.Column('status', sa.String(length=24), nullable=False),
        sa.Column('code', sa.String(length=32), nullable=False),
        sa.Column('next_action', sa.String(length=32), server_default='', nullable=False),
        sa.Column('microdeposit_attempts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_sandbox_setups')),
        sa.UniqueConstraint('idempotency_key', name=op.f('uq_sandbox_setups_idempotency_key')),
    )
    with op.batch_alter_table('sandbox_charges', schema=None) as batch_op:
        batch_op.add_column(sa.Column('status', sa.String(length=24), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('customer', sa.String(length=40), server_default='',
                                      nullable=False))
        batch_op.add_column(sa.Column('off_session', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column('client_secret', sa.String(length=80), server_default='',
                                      nullable=False))
    op.execute("UPDATE sandbox_charges SET status = CASE WHEN succeeded THEN 'succeeded' "
               "ELSE 'failed' END")


def downgrade():
    with op.batch_alter_table('sandbox_charges', schema=None) as batch_op:
        batch_op.drop_column('client_secret')
        batch_op.drop_column('off_session')
        batch_op.drop_column('customer')
        batch_op.drop_column('status')
    op.drop_table('sandbox_setups')
    op.drop_table('sandbox_payment_methods')
