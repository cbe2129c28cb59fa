"""Settings → Billing Settings: Payment Methods, Balance Auto Recharge Settings, Critical
Billing Phone Number, Make a Payment, Opt-in Direct Charge for Plan Subscription, Account
Payment History (and receipts), Billing Logs, Service Address, Users who Receive Billing
Emails, Printable Statements. Owners, admins and billing users: the role matrix
(portal/roles.py, Can.BILLING), checked by the account guard (portal/tenancy.py).

settings.py   the page and its sections (auto recharge, phone, address, direct charge,
              recipients)
methods.py    Payment Methods: add a card or bank account, Primary/Backup, remove
payments.py   Make a Payment, the payment history, receipts
statements.py Printable Statements: view, PDF, send, recurring schedules
logs.py       Billing Logs and their CSV export
spend.py      Where the money goes: spend by day and item, upcoming charges (issue 17)
budget.py     a sub-account's monthly budget, set by its agency (issue 17)
"""

from portal.tenancy import account_blueprint

bp = account_blueprint("billing", __name__, "/billing")


from portal.blueprints.billing import (  # noqa: E402,F401
    budget,
    logs,
    methods,
    payments,
    settings,
    spend,
    statements,
)
