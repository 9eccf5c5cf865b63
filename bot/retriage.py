"""Re-triage on customer replies: what changed in a ticket since the intake last saw it. Pure.

The intake stores a `TicketState` per ticket (how many PUBLIC comments by the CUSTOMER it had, and
the version) after every triage or re-triage decision. When a polled/webhooked ticket arrives with a
new version, `intake_decision` says whether to triage it for the first time, post a re-triage
update into the existing thread (the customer added a public comment), or skip it (agent comments,
internal notes, status/tag changes — the version moved but there is nothing new from the customer).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel

from triage.models import AuthorRole, Comment, Ticket
from triage.store import TicketState

CUSTOMER_REPLIED = "customer replied"


def _customer_public(comments: list[Comment]) -> list[Comment]:
    return [c for c in comments if c.public and c.author_role is AuthorRole.customer]


def state_of(ticket: Ticket) -> TicketState:
    """The state to store after handling `ticket` (first triage, re-triage or skip)."""
    return TicketState(
        ticket_id=ticket.id,
        public_customer_comments=len(_customer_public(ticket.comments)),
        last_version=ticket.version_key,
    )


def retriage_reason(previous: TicketState | None, ticket: Ticket) -> str | None:
    """ "customer replied" when the ticket has more public customer comments than `previous`."""
    if previous is None:
        return None
    if len(_customer_public(ticket.comments)) > previous.public_customer_comments:
        return CUSTOMER_REPLIED
    return None


def new_customer_comments(previous: TicketState | None, ticket: Ticket) -> list[Comment]:
    """The public customer comments added since `previous` (for the "customer replied: …" message)."""
    seen = previous.public_customer_comments if previous else 0
    return _customer_public(ticket.comments)[seen:]


class IntakeAction(StrEnum):
    triage = "triage"  # no thread yet: a first report
    retriage = "retriage"  # thread exists and the customer replied: update in the same thread
    skip = "skip"  # thread exists, nothing new from the customer (or re-triage is off)


class IntakeDecision(BaseModel):
    action: IntakeAction
    reason: str = ""


def intake_decision(
    previous: TicketState | None, has_thread: bool, ticket: Ticket, *, retriage_on_reply: bool = True
) -> IntakeDecision:
    """What an automatic trigger (poll/webhook) should do with this version of the ticket.

    `/triage` and Re-run are human requests and always run; this is only for poll and webhook.
    """
    if not has_thread:
        return IntakeDecision(action=IntakeAction.triage, reason="first triage")
    reason = retriage_reason(previous, ticket)
    if previous is None:
        # a thread but no stored state (triaged before state tracking, or by /triage only):
        # record the state now; do not guess what the customer added
        return IntakeDecision(action=IntakeAction.skip, reason="no stored state; recording it")
    if reason is None:
        return IntakeDecision(action=IntakeAction.skip, reason="no new public customer comment")
    if not retriage_on_reply:
        return IntakeDecision(action=IntakeAction.skip, reason=f"{reason} (ZENDESK_RETRIAGE_ON_REPLY=false)")
    return IntakeDecision(action=IntakeAction.retriage, reason=reason)
