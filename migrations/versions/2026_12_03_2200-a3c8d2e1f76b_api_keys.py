"""api keys

Revision ID: a3c8d2e1f76b
Revises: f2a6b1c0d54e
Create Date: 2026-12-03 22:00:00.000000

Issue 18: the public API's keys (hashed secrets, scopes, role), the first answers to
writes sent with an Idempotency-Key, and the per-minute request counts of each key.
"""
import sqlalchemy as sa
from alembic import op

from portal.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = 'a3c8d2e1f76b'
down_revision = 'f2a6b1c0d54e'
branch_labels = None
depends_on = None

ROLES = ('owner', 'admin', 'billing', 'user')


def upgrade():
    op.create_table(
        'api_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=80), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('scopes', sa.String(length=40), nullable=False),
        sa.Column('role', sa.Enum(*ROLES, name='role', native_enum=False, length=24,
                                  create_constraint=True), nullable=False),
        sa.Column('created_by_id', sa.Integer(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.Column('last_used_at', UTCDateTime(), nullable=True),
        sa.Column('revoked_at', UTCDateTime(), nullable=True),
        sa.Column('revoked_by_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_api_keys_account_id_accounts')),
        sa.ForeignKeyConstraint(['created_by_id'], ['users.id'],
                                name=op.f('fk_api_keys_created_by_id_users')),
        sa.ForeignKeyConstraint(['revoked_by_id'], ['users.id'],
                                name=op.f('fk_api_keys_revoked_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_keys')),
        sa.UniqueConstraint('prefix', name=op.f('uq_api_keys_prefix')),
    )
    op.create_index('ix_api_keys_account', 'api_keys', ['account_id', 'id'])
    op.create_table(
        'api_idempotency',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('api_key_id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=255), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('content_type', sa.String(length=100), server_default='', nullable=False),
        sa.Column('headers', sa.Text(), server_default='', nullable=False),
        sa.Column('body', sa.LargeBinary(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'],
                                name=op.f('fk_api_idempotency_api_key_id_api_keys')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_idempotency')),
        sa.UniqueConstraint('api_key_id', 'key', name='uq_api_idempotency_key'),
    )
    op.create_index('ix_api_idempotency_created', 'api_idempotency', ['created_at'])
    op.create_table(
        'api_rate_windows',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('api_key_id', sa.Integer(), nullable=False),
        sa.Column('bucket', sa.String(length=16), server_default='api', nullable=False),
        sa.Column('window_start', UTCDateTime(), nullable=False),
        sa.Column('count', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'],
                                name=op.f('fk_api_rate_windows_api_key_id_api_keys')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_api_rate_windows')),
        sa.UniqueConstraint('api_key_id', 'bucket', 'window_start',
                            name='uq_api_rate_windows_key_window'),
    )


def downgrade():
    op.drop_table('api_rate_windows')
    op.drop_index('ix_api_idempotency_created', table_name='api_idempotency')
    op.drop_table('api_idempotency')
    op.drop_index('ix_api_keys_account', table_name='api_keys')
    op.drop_table('api_keys')
