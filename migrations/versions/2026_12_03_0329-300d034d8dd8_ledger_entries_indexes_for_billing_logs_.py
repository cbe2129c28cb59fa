"""ledger entries: indexes for Billing Logs search

Revision ID: 300d034d8dd8
Revises: 402f32036ad4
Create Date: 2026-12-03 03:29:55.283536

A search for a receipt number (R-00001234) finds the entries its charge made through
(account_id, cause_ref, created_at, id) on both databases; on PostgreSQL a trigram GIN index
(pg_trgm) serves every "description contains" search (issue 13).
"""
from alembic import op
import sqlalchemy as sa

import portal.models.types


# revision identifiers, used by Alembic.
revision = '300d034d8dd8'
down_revision = '402f32036ad4'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_entries_account_cause_ref',
                              ['account_id', 'cause_ref', 'created_at', 'id'],
                              unique=False)
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
        op.create_index('ix_ledger_entries_description_trgm', 'ledger_entries', ['description'],
                        unique=False, postgresql_using='gin',
                        postgresql_ops={'description': 'gin_trgm_ops'})


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_index('ix_ledger_entries_description_trgm', table_name='ledger_entries')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_ledger_entries_account_cause_ref')
