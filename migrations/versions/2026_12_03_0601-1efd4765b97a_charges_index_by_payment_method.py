"""charges: index by payment method

Revision ID: 1efd4765b97a
Revises: 300d034d8dd8
Create Date: 2026-12-03 06:01:00.000000

Payment Methods shows each method's last result ("Declined Nov 28: insufficient funds",
"Paid Nov 30"), read from its newest settled charge: (method_id, id) finds it without
scanning the account's charges (issue 14).
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '1efd4765b97a'
down_revision = '300d034d8dd8'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.create_index('ix_charges_method', ['method_id', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('charges', schema=None) as batch_op:
        batch_op.drop_index('ix_charges_method')
