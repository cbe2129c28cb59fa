"""recharge guardrails and alerts

Revision ID: c9d3e8f7a21b
Revises: b8c2d7e6f20a
Create Date: 2026-12-03 14:30:00.000000

Issue 17 (G): Balance Auto Recharge Settings gain guardrails (a monthly recharge cap, at most
N recharges a UTC day, a stop after 3 declined recharges in a row) and a low-balance alert;
every alert sent is a row of `alerts` (Billing Settings → Recent alerts).
"""
import sqlalchemy as sa
from alembic import op

from portal.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = 'c9d3e8f7a21b'
down_revision = 'b8c2d7e6f20a'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('billing_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recharge_cap_cents', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('recharge_daily_limit', sa.Integer(),
                                      server_default='5', nullable=False))
        batch_op.add_column(sa.Column('recharge_declines', sa.Integer(),
                                      server_default='0', nullable=False))
        batch_op.add_column(sa.Column('recharge_stopped_at', UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('recharge_cap_month', sa.String(length=7),
                                      server_default='', nullable=False))
        batch_op.add_column(sa.Column('low_balance_cents', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('low_balance_below', sa.Boolean(),
                                      server_default=sa.false(), nullable=False))
    op.create_table(
        'alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('for_account_id', sa.Integer(), nullable=True),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('message', sa.String(length=300), nullable=False),
        sa.Column('key', sa.String(length=120), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
        sa.ForeignKeyConstraint(['for_account_id'], ['accounts.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('key'),
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_account_created', ['account_id', 'created_at', 'id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_alerts_account_created')
    op.drop_table('alerts')
    with op.batch_alter_table('billing_settings', schema=None) as batch_op:
        batch_op.drop_column('low_balance_below')
        batch_op.drop_column('low_balance_cents')
        batch_op.drop_column('recharge_cap_month')
        batch_op.drop_column('recharge_stopped_at')
        batch_op.drop_column('recharge_declines')
        batch_op.drop_column('recharge_daily_limit')
        batch_op.drop_column('recharge_cap_cents')
