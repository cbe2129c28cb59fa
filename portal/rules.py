"""Every rule with a number, in one place (DESIGN.md)."""

from datetime import timedelta

# Canceling and reactivating
DATA_RETENTION = timedelta(days=60)  # call history kept, reactivation possible
BALANCE_RETENTION = timedelta(days=90)  # available balance kept, refund can be requested
NUMBER_RESTORE_WINDOW = timedelta(days=14)  # released numbers can be restored

# Agency vs customer billing
MIN_STARTING_BALANCE_CENTS = 2500  # $25
BILLING_LINK_TTL = timedelta(days=7)

# Change History and Versions
VERSION_RETENTION_INDIVIDUAL = timedelta(days=7)
VERSION_RETENTION_AGENCY = timedelta(days=120)

# Sign-in throttling: failures allowed inside the window before sign-in is refused
SIGNIN_WINDOW = timedelta(minutes=15)
SIGNIN_MAX_FAILURES_PER_EMAIL = 5
SIGNIN_MAX_FAILURES_PER_ADDRESS = 20
