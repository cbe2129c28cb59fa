"""bulk actions

Revision ID: e1f5a0b9c43d
Revises: d0e4f9a8b32c
Create Date: 2026-12-03 17:00:00.000000

Issue 17 (K): bulk actions on Settings → Accounts. `bulk_actions` is one confirmed action,
unique per agency and the key its confirmation carried (a resubmission replays it);
`bulk_action_rows` is each selected sub-account's outcome.
"""
import sqlalchemy as sa
from alembic import op

from portal.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = 'e1f5a0b9c43d'
down_revision = 'd0e4f9a8b32c'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'bulk_actions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('agency_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('params_json', sa.Text(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('summary', sa.Text(), nullable=False),
        sa.Column('actor_id', sa.Integer(), nullable=True),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.Column('finished_at', UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['actor_id'], ['users.id'], ),
        sa.ForeignKeyConstraint(['agency_id'], ['accounts.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('agency_id', 'key', name='uq_bulk_actions_agency_key'),
    )
    with op.batch_alter_table('bulk_actions', schema=None) as batch_op:
        batch_op.create_index('ix_bulk_actions_agency_created', ['agency_id', 'created_at'],
                              unique=False)
    op.create_table(
        'bulk_action_rows',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('bulk_action_id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('position', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=120), nullable=False),
        sa.Column('params_json', sa.Text(), nullable=False),
        sa.Column('outcome', sa.String(length=16), nullable=False),
        sa.Column('message', sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ),
        sa.ForeignKeyConstraint(['bulk_action_id'], ['bulk_actions.id'], ),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('bulk_action_id', 'account_id',
                            name='uq_bulk_action_rows_account'),
    )


def downgrade():
    op.drop_table('bulk_action_rows')
    with op.batch_alter_table('bulk_actions', schema=None) as batch_op:
        batch_op.drop_index('ix_bulk_actions_agency_created')
    op.drop_table('bulk_actions')
