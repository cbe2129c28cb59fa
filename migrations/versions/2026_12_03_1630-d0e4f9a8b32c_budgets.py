"""budgets per sub-account

Revision ID: d0e4f9a8b32c
Revises: c9d3e8f7a21b
Create Date: 2026-12-03 16:30:00.000000

Issue 17 (B): an agency sets a sub-account's monthly budget (budgets) with alerts at chosen
percentages, each once a UTC month (budget_alerts, UNIQUE(account_id, month, threshold)),
and may pause its calls when it is reached: the account status 'budget_paused' and the
events budget_paused / budget_resumed (the two CHECK constraints accept them).
"""
import sqlalchemy as sa
from alembic import op

from portal.models.types import UTCDateTime

# revision identifiers, used by Alembic.
revision = 'd0e4f9a8b32c'
down_revision = 'c9d3e8f7a21b'
branch_labels = None
depends_on = None

STATUSES = ('active', 'swapping_paused', 'calls_stopped', 'billing_paused', 'canceled')
NEW_STATUSES = ('budget_paused',)
EVENT_KINDS = (
    "swapping_paused", "calls_stopped", "resumed", "closed", "reactivated", "number_released",
    "number_restored", "agency_canceled", "transferred_out", "transferred_in",
    "support_requested", "data_purged", "billing_paused", "billing_resumed",
    "billing_link_sent", "billing_link_canceled", "billing_mode_changed",
)
NEW_EVENT_KINDS = ("budget_paused", "budget_resumed")


def _check(table, name, column, values):
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_constraint(op.f(name), type_='check')
        batch_op.create_check_constraint(
            op.f(name), f"{column} IN (" + ", ".join(f"'{v}'" for v in values) + ")")


def upgrade():
    _check('accounts', 'ck_accounts_accountstatus', 'status', STATUSES + NEW_STATUSES)
    _check('account_events', 'ck_account_events_eventkind', 'kind',
           EVENT_KINDS + NEW_EVENT_KINDS)
    op.create_table(
        'budgets',
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('amount_cents', sa.BigInteger(), nullable=False),
        sa.Column('thresholds_text', sa.String(length=24), nullable=False),
        sa.Column('pause_calls', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('paused_key', sa.String(length=32), server_default='', nullable=False),
        sa.Column('month', sa.String(length=7), server_default='', nullable=False),
        sa.Column('spent_cents', sa.BigInteger(), server_default='0', nullable=False),
        sa.Column('updated_by_id', sa.Integer(), nullable=True),
        sa.Column('updated_at', UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint('amount_cents > 0', name=op.f('ck_budgets_amount_positive')),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_budgets_account_id_accounts')),
        sa.ForeignKeyConstraint(['updated_by_id'], ['users.id'],
                                name=op.f('fk_budgets_updated_by_id_users')),
        sa.PrimaryKeyConstraint('account_id', name=op.f('pk_budgets')),
    )
    op.create_table(
        'budget_alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('month', sa.String(length=7), nullable=False),
        sa.Column('threshold', sa.Integer(), nullable=False),
        sa.Column('amount_cents', sa.BigInteger(), nullable=False),
        sa.Column('spent_cents', sa.BigInteger(), nullable=False),
        sa.Column('created_at', UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                                name=op.f('fk_budget_alerts_account_id_accounts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_budget_alerts')),
        sa.UniqueConstraint('account_id', 'month', 'threshold',
                            name='uq_budget_alerts_account_month_threshold'),
    )


def downgrade():
    op.drop_table('budget_alerts')
    op.drop_table('budgets')
    # A budget-paused account or event has no older equivalent: running again, or gone.
    op.execute("UPDATE accounts SET status = 'active' WHERE status = 'budget_paused'")
    op.execute("DELETE FROM account_events WHERE kind IN ("
               + ", ".join(f"'{k}'" for k in NEW_EVENT_KINDS) + ")")
    _check('account_events', 'ck_account_events_eventkind', 'kind', EVENT_KINDS)
    _check('accounts', 'ck_accounts_accountstatus', 'status', STATUSES)
