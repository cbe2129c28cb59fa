"""The role matrix: what each role may do on an account, in one place (issue 15).

    owner    everything, including closing the account and managing owners
    admin    everything but owners and closing
    billing  Billing Settings, payments, statements, receipts; nothing else
    user     calls, numbers, agent statuses; no billing, no settings

MATRIX says which capabilities each role has; ENDPOINTS says which capability each page of
an account (/accounts/<id>/...) needs. The account blueprints' guard (portal/tenancy.py)
reads both on every request, before the view runs: a role without the capability gets 403
with REFUSED's sentence (a billing user opening the account's front page is sent to Billing
Settings instead). An endpoint missing from ENDPOINTS is refused for every role (fail
closed); tests/web/test_role_matrix.py walks every route × role against this module, and
the README's "Roles" table is this matrix in words.

Who reaches an account at all (tenancy: a membership, or an agency owner/admin reaching a
sub-account) is portal/services/access.py; an account not reached is a 404 before this.
No Flask here: the services may import it.
"""

from enum import StrEnum

from portal.models.accounts import Role


class Can(StrEnum):
    OVERVIEW = "overview"          # the account's front page (Account Settings, read-only)
    CALLS = "calls"                # Call Log, its CSV export
    NUMBERS = "numbers"            # tracking numbers and released numbers (read)
    AGENT_STATUS = "agent_status"  # the status list, setting one's own status
    BILLING = "billing"            # Billing Settings, cards, payments, statements, receipts, logs
    SETTINGS = "settings"          # settings pages: statuses, presets, queues, sources, plan,
    #                                privacy, security policy, history, support, status changes,
    #                                restoring numbers
    AGENCY = "agency"              # an agency's sub-accounts, their billing mode, transfers
    PEOPLE = "people"              # Settings → Users: invite, change role, remove (not owners)
    OWNERS = "owners"              # make, demote or remove an owner
    CLOSE = "close"                # close the account, cancel an agency


MATRIX: dict[Role, frozenset[Can]] = {
    Role.OWNER: frozenset(Can),
    Role.ADMIN: frozenset(Can) - {Can.OWNERS, Can.CLOSE},
    Role.BILLING: frozenset({Can.BILLING}),
    Role.USER: frozenset({Can.OVERVIEW, Can.CALLS, Can.NUMBERS, Can.AGENT_STATUS}),
}

# Where a role lands on an account: its front page, or the first page it may open.
HOME = {Role.OWNER: "accounts.show", Role.ADMIN: "accounts.show",
        Role.BILLING: "billing.index", Role.USER: "accounts.show"}

REFUSED = {
    Can.OVERVIEW: "Your role on this account opens Billing Settings only.",
    Can.CALLS: "Your role on this account doesn't include calls.",
    Can.NUMBERS: "Your role on this account doesn't include tracking numbers.",
    Can.AGENT_STATUS: "Your role on this account doesn't include agent statuses.",
    Can.BILLING: "Only the account's owners, admins and billing users can open billing.",
    Can.SETTINGS: "Only the account's owners and admins can do that.",
    Can.AGENCY: "Only the account's owners and admins can do that.",
    Can.PEOPLE: "Only the account's owners and admins can manage users.",
    Can.OWNERS: "Only an owner can add, change or remove an owner.",
    Can.CLOSE: "Only the account's owners can close or cancel it.",
}

# Every account page (endpoint) and the capability it needs. "blueprint.*" covers a whole
# blueprint's views (one whose pages all need the same capability).
ENDPOINTS: dict[str, Can] = {
    # Settings → Account Settings, status, closing
    "accounts.show": Can.OVERVIEW,
    "accounts.pause_swapping": Can.SETTINGS,
    "accounts.stop_calls": Can.SETTINGS,
    "accounts.resume": Can.SETTINGS,
    "accounts.reactivate": Can.SETTINGS,
    "accounts.close_confirm": Can.CLOSE,
    "accounts.close": Can.CLOSE,
    # agencies: sub-accounts, billing mode, the agency's own cancel, transfers
    "accounts.index": Can.AGENCY,
    "accounts.billing_mode": Can.AGENCY,
    "accounts.add_to_agency_billing": Can.AGENCY,
    "accounts.remove_from_agency_billing": Can.AGENCY,
    "accounts.resend_billing_link": Can.AGENCY,
    "accounts.cancel_billing_request": Can.AGENCY,
    "accounts.ask_client_card": Can.AGENCY,
    "accounts.ask_client_payment": Can.AGENCY,
    # Bulk actions (issue 17, K); Close among them is for owners (checked in the view).
    "accounts.bulk_review": Can.AGENCY,
    "accounts.bulk_csv": Can.AGENCY,
    "accounts.bulk_run": Can.AGENCY,
    "accounts.bulk_show": Can.AGENCY,
    "accounts.parent": Can.SETTINGS,
    "accounts.cancel_agency_confirm": Can.CLOSE,
    "accounts.cancel_agency_review": Can.CLOSE,
    "accounts.cancel_agency": Can.CLOSE,
    "accounts.transfer_form": Can.AGENCY,
    "accounts.transfer": Can.AGENCY,
    # calls and numbers
    "calls.index": Can.CALLS,
    "calls.export": Can.CALLS,
    "numbers.index": Can.NUMBERS,
    "numbers.released": Can.NUMBERS,
    "numbers.restore": Can.SETTINGS,
    "numbers.restore_all": Can.SETTINGS,
    # agent statuses: everyone with the capability sees the list and sets their own
    "agents.index": Can.AGENT_STATUS,
    "agents.header_form": Can.AGENT_STATUS,
    "agents.set_mine": Can.AGENT_STATUS,
    "agents.create": Can.SETTINGS,
    "agents.edit": Can.SETTINGS,
    "agents.delete": Can.SETTINGS,
    "agents.move": Can.SETTINGS,
    # billing
    "billing.*": Can.BILLING,
    # statements made by the jobs (issue 17, J): as the statement PDF
    "billing.statement_file": Can.BILLING,
    "billing.statement_file_status": Can.BILLING,
    "billing.statement_file_retry": Can.BILLING,
    # a sub-account's budget: its agency's owners and admins (is_agency_admin, in the view)
    "billing.budget": Can.AGENCY,
    # settings pages (the lists of tracking sources, call queues and presets read as part of
    # the calls: they say where calls come from and go)
    "presets.sources": Can.CALLS,
    "presets.queues": Can.CALLS,
    "presets.presets_index": Can.CALLS,
    "presets.*": Can.SETTINGS,
    "plans.*": Can.SETTINGS,
    "privacy.*": Can.SETTINGS,
    "history.*": Can.SETTINGS,
    "developers.*": Can.SETTINGS,  # issue 18: API keys, webhooks
    "support.*": Can.SETTINGS,
    "account_security.overview": Can.OVERVIEW,  # what the account requires, read-only
    "account_security.require_two_factor": Can.SETTINGS,
    # Settings → Users (issue 15, B's pages)
    "people.*": Can.PEOPLE,
}


def can(role: Role | None, capability: Can) -> bool:
    return role is not None and capability in MATRIX[Role(role)]


def needs(endpoint: str | None) -> Can | None:
    """The capability an account page needs; None for an endpoint the matrix doesn't list
    (refused: fail closed)."""
    if not endpoint:
        return None
    if endpoint in ENDPOINTS:
        return ENDPOINTS[endpoint]
    return ENDPOINTS.get(endpoint.split(".", 1)[0] + ".*")


def allows(role: Role | None, endpoint: str | None) -> bool:
    capability = needs(endpoint)
    return capability is not None and can(role, capability)


def refusal(endpoint: str | None) -> str:
    capability = needs(endpoint)
    return REFUSED[capability] if capability else "Your role on this account can't open that."


def roles_that(capability: Can) -> list[Role]:
    return [role for role in Role if capability in MATRIX[role]]
