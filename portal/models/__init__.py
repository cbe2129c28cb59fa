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
from portal.models.agents import BUILTIN_STATUSES, AgentStatus
from portal.models.billing import (
    ALERT_LABELS,
    CHARGE_LABELS,
    LEDGER_LABELS,
    Alert,
    AlertKind,
    BillingEmailRecipient,
    BillingSettings,
    Cause,
    Charge,
    ChargePurpose,
    ChargeStatus,
    LedgerEntry,
    LedgerKind,
    MethodKind,
    MethodRole,
    MethodVerification,
    PaymentMethod,
    ProcessorCustomer,
    Refund,
    RefundSource,
    RefundStatus,
    SandboxCharge,
    SandboxRefund,
    ScheduleFrequency,
    StatementSchedule,
)
from portal.models.calls import Call
from portal.models.lifecycle import (
    EVENT_LABELS,
    SUPPORT_LABELS,
    AccountEvent,
    EventKind,
    SupportKind,
    SupportRequest,
    SupportStatus,
)
from portal.models.mail import MailStatus, OutboxAttachment, OutboxMessage
from portal.models.numbers import NumberStatus, TrackingNumber
from portal.models.people import Invitation, InvitationStatus
from portal.models.presets import CallQueue, Preset, PresetKind, TrackingSource
from portal.models.processor import Dispute, ProcessorEventRecord
from portal.models.sandbox import SandboxPaymentMethod, SandboxSetup
from portal.models.security import RecoveryCode
from portal.models.users import SigninAttempt, User
from portal.models.versions import Version

__all__ = [
    "CHARGE_LABELS", "BillingEmailRecipient", "BillingSettings", "Charge", "ChargePurpose",
    "ChargeStatus", "MailStatus", "OutboxAttachment", "OutboxMessage", "ScheduleFrequency",
    "StatementSchedule",
    "EVENT_LABELS", "LEDGER_LABELS", "PLANS", "STATUS_LABELS", "SUPPORT_LABELS",
    "Account", "AccountEvent", "AccountKind", "AccountStatus", "BillingMode", "Call", "Cause",
    "LedgerEntry", "LedgerKind", "MethodKind", "MethodRole", "PaymentMethod", "SandboxCharge",
    "Refund", "RefundStatus", "SandboxRefund",
    "EventKind", "Membership", "NumberStatus", "Role", "SigninAttempt", "SupportKind",
    "SupportRequest", "SupportStatus", "TrackingNumber", "User",
    "Version", "RecoveryCode", "BUILTIN_STATUSES", "AgentStatus", "CallQueue", "Preset",
    "PresetKind", "TrackingSource", "Invitation", "InvitationStatus",
    "SandboxPaymentMethod", "SandboxSetup", "Dispute", "ProcessorEventRecord",
    "MethodVerification", "ProcessorCustomer", "RefundSource",
]

# The billing links' tables (their own package, its models registered with the rest).
from billing_links.models import (  # noqa: E402
    BillingRequest,
    LinkHit,
    RequestStatus,
    TaskKind,
    TaskLink,
    TaskStatus,
)

__all__ += ["BillingRequest", "LinkHit", "RequestStatus", "TaskKind", "TaskLink",
            "TaskStatus"]
__all__ += ["ALERT_LABELS", "Alert", "AlertKind"]  # issue 17

from portal.models.budgets import Budget, BudgetAlert  # noqa: E402

__all__ += ["Budget", "BudgetAlert"]  # issue 17 (B)

from portal.models.bulk import (  # noqa: E402
    BULK_LABELS,
    BulkAction,
    BulkActionRow,
    BulkKind,
    RowOutcome,
)

__all__ += ["BULK_LABELS", "BulkAction", "BulkActionRow", "BulkKind", "RowOutcome"]  # 17 (K)

from portal.models.statement_files import (  # noqa: E402
    FILE_STATUS_LABELS,
    FileStatus,
    StatementFile,
)

__all__ += ["FILE_STATUS_LABELS", "FileStatus", "StatementFile"]  # issue 17 (J)

from portal.models.api import (  # noqa: E402
    SCOPE_LABELS,
    SCOPES,
    ApiIdempotency,
    ApiKey,
    ApiRateWindow,
)

__all__ += ["SCOPES", "SCOPE_LABELS", "ApiIdempotency", "ApiKey", "ApiRateWindow"]  # issue 18

from portal.models.usage_events import UsageEvent  # noqa: E402

__all__ += ["UsageEvent"]  # issue 18 (M)

from portal.models.webhooks import (  # noqa: E402
    DELIVERY_LABELS,
    DeliveryStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)

__all__ += ["DELIVERY_LABELS", "DeliveryStatus", "WebhookDelivery", "WebhookEndpoint",
            "WebhookEvent"]  # issue 18 (W)
