"""statement files

Revision ID: f2a6b1c0d54e
Revises: e1f5a0b9c43d
Create Date: 2026-12-03 17:40:00.000000

Issue 17 (J): statements past rules.STATEMENT_SYNC_MAX_ENTRIES are made by the jobs:
`statement_files` holds each (pending, building, ready with its PDF for 7 days, or failed);
at most one pending/building row per account and period (a partial unique index).
"""
import sqlalchemy as sa
from alembic import op

from portal.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = 'f2a6b1c0d54e'
down_revision = 'e1f5a0b9c43d'
branch_labels = None
depends_on = None

OPEN = sa.text("status IN ('pending', 'building')")


def upgrade():
    op.create_table(
        'statement_files',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('period_from', sa.Date(), nullable=False),
        sa.Column('period_to', sa.Date(), nullable=False),
        sa.Column('requested_by_id', sa.Integer(), nullable=True),
        sa.Column('status', sa.Enum('pending', 'building', 'ready', 'failed',
                                    name='filestatus', native_enum=False,
                                    create_constraint=True, length=24), nullable=False),
        sa.Column('send_to', sa.Text(), server_default='', nullable=False),
        sa.Column('pdf', sa.LargeBinary(), nullable=True),
        sa.Column('pages', sa.Integer(), nullable=True),
        sa.Column('size', sa.Integer(), nullable=True),
        sa.Column('error', sa.String(length=300), server_default='', nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('claimed_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('ready_at', UTCDateTime(timezone=True), nullable=True),
        sa.Column('expires_at', UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_statement_files_account_id_accounts')),
        sa.ForeignKeyConstraint(['requested_by_id'], ['users.id'],
                                name=op.f('fk_statement_files_requested_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_statement_files')),
    )
    with op.batch_alter_table('statement_files', schema=None) as batch_op:
        batch_op.create_index('ix_statement_files_account_created',
                              ['account_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_statement_files_status', ['status', 'id'], unique=False)
        batch_op.create_index('uq_statement_files_open',
                              ['account_id', 'period_from', 'period_to'], unique=True,
                              sqlite_where=OPEN, postgresql_where=OPEN)


def downgrade():
    with op.batch_alter_table('statement_files', schema=None) as batch_op:
        batch_op.drop_index('uq_statement_files_open', sqlite_where=OPEN,
                            postgresql_where=OPEN)
        batch_op.drop_index('ix_statement_files_status')
        batch_op.drop_index('ix_statement_files_account_created')
    op.drop_table('statement_files')
