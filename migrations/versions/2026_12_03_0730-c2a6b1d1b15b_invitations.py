"""invitations

Revision ID: c2a6b1d1b15b
Revises: b1f5a0c0a15a
Create Date: 2026-12-03 07:30:00.000000

Settings → Users → Invite User (issue 15): a signed one-time link per invitation, one live
invitation per account and email.
"""
import sqlalchemy as sa
from alembic import op

from portal.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = 'c2a6b1d1b15b'
down_revision = 'b1f5a0c0a15a'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'invitations',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('link_id', sa.String(length=32), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('email', sa.String(length=254), nullable=False),
        sa.Column('role', sa.Enum('owner', 'admin', 'billing', 'user', name='role',
                                  native_enum=False, create_constraint=True, length=24),
                  nullable=False),
        sa.Column('status', sa.Enum('pending', 'accepted', 'revoked', 'replaced',
                                    name='invitationstatus', native_enum=False,
                                    create_constraint=True, length=24), nullable=False),
        sa.Column('invited_by_id', sa.Integer(), nullable=True),
        sa.Column('accepted_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('closed_at', UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
        sa.ForeignKeyConstraint(['invited_by_id'], ['users.id'], ),
        sa.ForeignKeyConstraint(['accepted_by_id'], ['users.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('link_id'),
    )
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.create_index('uq_invitations_pending_email', ['account_id', 'email'],
                              unique=True, sqlite_where=sa.text("status = 'pending'"),
                              postgresql_where=sa.text("status = 'pending'"))
        batch_op.create_index('ix_invitations_account_created', ['account_id', 'created_at'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('invitations', schema=None) as batch_op:
        batch_op.drop_index('ix_invitations_account_created')
        batch_op.drop_index('uq_invitations_pending_email')
    op.drop_table('invitations')
