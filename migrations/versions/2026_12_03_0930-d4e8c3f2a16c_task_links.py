"""task links

Revision ID: d4e8c3f2a16c
Revises: c2a6b1d1b15b
Create Date: 2026-12-03 09:30:00.000000

Single-task links (issue 15): "Ask the client to update their card" and "Ask the client to
pay", signed one-time links for a customer-billed sub-account; one live link per kind and
sub-account.
"""
import sqlalchemy as sa
from alembic import op

from portal.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = 'd4e8c3f2a16c'
down_revision = 'c2a6b1d1b15b'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'task_links',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.Enum('card', 'pay', name='taskkind', native_enum=False,
                                  create_constraint=True, length=24), nullable=False),
        sa.Column('link_id', sa.String(length=32), nullable=False),
        sa.Column('agency_id', sa.Integer(), nullable=False),
        sa.Column('sub_account_id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('amount_cents', sa.BigInteger(), nullable=True),
        sa.Column('status', sa.Enum('pending', 'done', 'replaced', 'canceled',
                                    name='taskstatus', native_enum=False,
                                    create_constraint=True, length=24), nullable=False),
        sa.Column('failed_attempts', sa.Integer(), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('closed_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('charge_id', sa.Integer(), nullable=True),
        sa.Column('method_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['agency_id'], ['accounts.id'], ),
        sa.ForeignKeyConstraint(['sub_account_id'], ['accounts.id'], ),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], ),
        sa.ForeignKeyConstraint(['charge_id'], ['charges.id'], ),
        sa.ForeignKeyConstraint(['method_id'], ['payment_methods.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('link_id'),
    )
    with op.batch_alter_table('task_links', schema=None) as batch_op:
        batch_op.create_index('ix_task_links_sub_account_id', ['sub_account_id'], unique=False)
        batch_op.create_index('uq_task_links_pending_sub_kind', ['sub_account_id', 'kind'],
                              unique=True, sqlite_where=sa.text("status = 'pending'"),
                              postgresql_where=sa.text("status = 'pending'"))


def downgrade():
    with op.batch_alter_table('task_links', schema=None) as batch_op:
        batch_op.drop_index('uq_task_links_pending_sub_kind')
        batch_op.drop_index('ix_task_links_sub_account_id')
    op.drop_table('task_links')
