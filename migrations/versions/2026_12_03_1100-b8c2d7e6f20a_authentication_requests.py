"""authentication requests

Revision ID: b8c2d7e6f20a
Revises: a7b1c6d5e19f
Create Date: 2026-12-03 11:00:00.000000

Issue 16, 3-D Secure off-session: an auto recharge whose card asked to authenticate while
nobody was there gets a signed one-time link to the billing recipients; this row is what the
link stands for (the account, the card, the recharge that asked, and what the link did).
"""
import sqlalchemy as sa
from alembic import op

from portal.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = 'b8c2d7e6f20a'
down_revision = 'a7b1c6d5e19f'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'authentication_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('link_id', sa.String(length=32), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('charge_id', sa.Integer(), nullable=False),
        sa.Column('method_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.Enum('pending', 'used', 'revoked', name='authenticationstatus',
                                    native_enum=False, create_constraint=True, length=24),
                  nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('payment_charge_id', sa.Integer(), nullable=True),
        sa.Column('setup_reference', sa.String(length=64), nullable=False),
        sa.Column('last_error', sa.String(length=200), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('used_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('confirmed_at', UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
        sa.ForeignKeyConstraint(['charge_id'], ['charges.id'], ),
        sa.ForeignKeyConstraint(['method_id'], ['payment_methods.id'], ),
        sa.ForeignKeyConstraint(['payment_charge_id'], ['charges.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('link_id'),
    )
    with op.batch_alter_table('authentication_requests', schema=None) as batch_op:
        batch_op.create_index('ix_authentication_requests_account_id', ['account_id'],
                              unique=False)
        batch_op.create_index('ix_authentication_requests_method_id', ['method_id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('authentication_requests', schema=None) as batch_op:
        batch_op.drop_index('ix_authentication_requests_method_id')
        batch_op.drop_index('ix_authentication_requests_account_id')
    op.drop_table('authentication_requests')
