"""All models, imported here so Alembic and the app see every table."""

from portal.models.accounts import (
    PLANS,
    STATUS_LABELS,
    Account,
    AccountKind,
    AccountStatus,
    BillingMode,
    Membership,
    Role,
)
from portal.models.calls import Call
from portal.models.numbers import NumberStatus, TrackingNumber
from portal.models.users import SigninAttempt, User

__all__ = [
    "PLANS", "STATUS_LABELS",
    "Account", "AccountKind", "AccountStatus", "BillingMode", "Call", "Membership",
    "NumberStatus", "Role", "SigninAttempt", "TrackingNumber", "User",
]
