"""memberships: the billing role

Revision ID: b1f5a0c0a15a
Revises: 1efd4765b97a
Create Date: 2026-12-03 07:25:00.000000

Issue 15 adds a fourth role, billing (Billing Settings, payments, statements and receipts,
nothing else): the role column's CHECK constraint (ck_memberships_role) accepts 'billing'.
SQLite can't alter a CHECK, so batch mode copies the table; on PostgreSQL the constraint is
dropped and created again.
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = 'b1f5a0c0a15a'
down_revision = '1efd4765b97a'
branch_labels = None
depends_on = None

OLD = ('owner', 'admin', 'user')
NEW = ('owner', 'admin', 'billing', 'user')


def _role(values):
    return sa.Enum(*values, name='role', native_enum=False, create_constraint=True, length=24)


def upgrade():
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.alter_column('role', existing_type=_role(OLD), type_=_role(NEW),
                              existing_nullable=False)


def downgrade():
    # A billing membership has no older equivalent: refuse rather than guess a role.
    bind = op.get_bind()
    left = bind.execute(sa.text("SELECT count(*) FROM memberships WHERE role = 'billing'")).scalar()
    if left:
        raise RuntimeError(f"{left} billing membership(s) exist: remove or change them before "
                           "downgrading below b1f5a0c0a15a")
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.alter_column('role', existing_type=_role(NEW), type_=_role(OLD),
                              existing_nullable=False)
