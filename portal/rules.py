"""Every rule with a number, in one place (DESIGN.md)."""

from datetime import timedelta

# Canceling and reactivating
DATA_RETENTION = timedelta(days=60)  # call history kept, reactivation possible
BALANCE_RETENTION = timedelta(days=90)  # available balance kept, refund can be requested
NUMBER_RESTORE_WINDOW = timedelta(days=14)  # released numbers can be restored

# Agency vs customer billing
MIN_STARTING_BALANCE_CENTS = 2500  # $25
BILLING_LINK_TTL = timedelta(days=7)
# The thank-you page and receipt of a billing-link payment (linked from the receipt email)
BILLING_LINK_RECEIPT_TTL = timedelta(days=90)

# People: invitations (Settings → Users → Invite User)
INVITATION_TTL = timedelta(days=7)
INVITATIONS_PER_HOUR = 20  # per account: Invite User and Resend together

# Change History and Versions
VERSION_RETENTION_INDIVIDUAL = timedelta(days=7)
VERSION_RETENTION_AGENCY = timedelta(days=120)

# Agent statuses and presets
MAX_CUSTOM_AGENT_STATUSES = 50  # per account, besides the built-in ones
AGENT_STATUS_NAME_MAX = 40
RECORD_NAME_MAX = 80  # tracking sources, call queues and presets
MATCH_TEXT_MAX = 120  # a tracking source's referrer text or landing page parameter
CALL_QUEUE_RING_SECONDS = (5, 120)  # how long a queue rings an agent, inclusive
CALL_QUEUE_MAX_WAIT_MINUTES = (1, 60)  # the longest a caller waits in a queue, inclusive

# Sign-in throttling: failures allowed inside the window before sign-in is refused
SIGNIN_WINDOW = timedelta(minutes=15)
SIGNIN_MAX_FAILURES_PER_EMAIL = 5
SIGNIN_MAX_FAILURES_PER_ADDRESS = 20
# Every password set (first, reset, change, invitation): at least this long, and not one of
# the 10,000 most common (portal/data/common_passwords.txt) nor the user's email
MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 200
# A new owner named by email (a transfer) who had no user sets a password from a link
PASSWORD_LINK_TTL = timedelta(days=7)
# "Forgot password?": the emailed link works for an hour, once; at most this many links per
# email (and asks per client address) in the window
PASSWORD_RESET_TTL = timedelta(hours=1)
PASSWORD_RESET_WINDOW = timedelta(hours=1)
PASSWORD_RESET_MAX_PER_EMAIL = 3
PASSWORD_RESET_MAX_PER_ADDRESS = 20
# A new sign-in email is confirmed from a link sent to it; at most this many links a user
# asks for in the window (each needs the password; the cap keeps it from mailing strangers)
EMAIL_CHANGE_TTL = timedelta(hours=24)
EMAIL_CHANGE_WINDOW = timedelta(hours=1)
EMAIL_CHANGE_MAX_PER_USER = 5

# Account security
TOTP_STEP_SECONDS = 30  # RFC 6238; a code from the step before or after is accepted too
RECOVERY_CODE_COUNT = 10
TWO_FACTOR_PENDING = timedelta(minutes=5)  # between the password and the code
SESSION_IDLE_TIMEOUT = timedelta(minutes=30)  # signed out after this long without a request
REAUTH_AFTER = timedelta(minutes=15)  # older sign-ins give the password again to change a
# payment method or close an account

# Billing
MAX_CHARGE_CENTS = 1_000_000  # $10,000: the most one payment or recharge may charge
RECHARGE_SUGGESTION_WINDOW = timedelta(days=30)  # usage the suggestion looks at
MIN_SUGGESTED_THRESHOLD_CENTS = 1000  # $10
# A charge the processor didn't answer stays pending (it may have gone through) and is asked
# again with the same key: after 1 minute, then 2, 3, ... (attempts x 1 minute), at most
# hourly. It is never marked failed without an answer: that could drop a real charge.
CHARGE_RETRY_AFTER = timedelta(minutes=1)
CHARGE_RETRY_MAX_BACKOFF = timedelta(hours=1)

# Usage prices in cents per unit (posted by the usage endpoint and command).
USAGE_PRICES = {
    "numbers": 300,  # a tracking number's monthly rental
    "minutes": 5,
    "transcriptions": 3,  # per transcribed minute
    "enhanced_caller_id": 15,  # per lookup
    "encrypted_recording": 2,  # per recorded minute
}
USAGE_LABELS = {
    "numbers": ("number", "numbers"),
    "minutes": ("minute", "minutes"),
    "transcriptions": ("transcription minute", "transcription minutes"),
    "enhanced_caller_id": ("enhanced caller ID lookup", "enhanced caller ID lookups"),
    "encrypted_recording": ("encrypted recording minute", "encrypted recording minutes"),
}
MAX_USAGE_QUANTITY = 1_000_000  # per item per posting
# Usage events in batches (POST /api/v1/usage/batches, issue 18): at most this many per
# request; an event's timestamp may be up to 35 days old (last month's usage, sent late,
# still lands before the month's statement is final) and at most 5 minutes ahead (clock
# skew); outside that window the event is refused (the batch is not).
MAX_USAGE_BATCH_EVENTS = 1_000
USAGE_EVENT_MAX_AGE_DAYS = 35
USAGE_EVENT_MAX_AHEAD_SECONDS = 5 * 60

# Monthly plan fees in cents, charged on the 1st of the month for that month.
PLAN_FEES = {
    "Starter": 3900,
    "Essentials": 7900,
    "Pro": 17900,
    "Performance": 49900,
    "Marketing Lite": 1900,
    "Agency": 29900,
}

# Sales tax on the prior month's usage, by service address state, in basis points
# (1/100 of a percent). A small table: states not listed are 0.
TAX_RATES_BPS = {
    "CA": 725,
    "FL": 600,
    "IL": 625,
    "NY": 400,
    "PA": 600,
    "TX": 625,
    "WA": 650,
}

# Issue 16, card health: the billing recipients are told this many days before the Primary
# or Backup card expires (a daily job; once per card and threshold).
EXPIRY_NOTICE_DAYS = (30, 7)

# Issue 16, 3-D Secure off-session: the link emailed to authenticate a recharge's card works
# this long (once).
SCA_LINK_TTL = timedelta(days=7)

# Issue 17, recharge guardrails (Balance Auto Recharge Settings): at most this many auto
# recharges a UTC day by default (a person may choose 1 to RECHARGE_DAILY_LIMIT_MAX); after
# RECHARGE_DECLINES_TO_STOP declined recharges in a row, auto recharge stops until a payment
# succeeds or a card is added; a monthly recharge cap of at most RECHARGE_CAP_MAX_CENTS.
RECHARGE_DAILY_LIMIT_DEFAULT = 5
RECHARGE_DAILY_LIMIT_MAX = 50
RECHARGE_DECLINES_TO_STOP = 3
RECHARGE_CAP_MAX_CENTS = 100_000_000  # $1,000,000

# Bulk actions on Settings → Accounts (issue 17, K): at most this many sub-accounts at once
# (the confirmation lists each), and a CSV of name,email,amount of at most this size.
BULK_MAX_ROWS = 500
BULK_CSV_MAX_BYTES = 200_000

# Issue 17 (J): a statement PDF whose period holds more ledger entries than this is made by
# the jobs (step "statements-prepare") and emailed/downloadable when ready; at or under it,
# rendered in the request (bench/statement_pdf.py: 1,000 entries 0.9 s, 10,000 entries 3 s).
# A prepared statement's PDF is kept STATEMENT_FILE_TTL after it is ready; a build claimed
# longer than STATEMENT_BUILD_STALE ago (a runner that died) is claimed again.
STATEMENT_SYNC_MAX_ENTRIES = 5_000
STATEMENT_FILE_TTL = timedelta(days=7)
STATEMENT_BUILD_STALE = timedelta(minutes=15)

# Issue 18 (K): the public API's rate limits, per API key and UTC minute (RateLimit headers,
# 429 with Retry-After past them; a deployment may set either in its config). A key with the
# metering scope gets the larger limit on the usage endpoints (batches of up to 1,000 events
# from several senders); every other request counts against API_RATE_LIMIT_PER_MINUTE.
API_RATE_LIMIT_PER_MINUTE = 600
API_METERING_RATE_LIMIT_PER_MINUTE = 6_000
# An Idempotency-Key's first answer is replayed for this long, then purged (jobs: api-purge).
API_IDEMPOTENCY_TTL = timedelta(hours=24)
