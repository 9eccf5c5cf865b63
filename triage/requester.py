"""Whose data may research look up? Only the ticket's requester.

A ticket names many people: colleagues, the customer's own users, people in pasted logs. Person look-ups
(PostHog persons, flag evaluations, recordings by person) are scoped to the requester: their email comes
from the ticket record (the Zendesk requester, never from ticket text), and the distinct/person ids are
the ones the requester wrote in their own messages (the description and their own comments). An id that
only an agent, a CC'd colleague or a pasted document mentions is not looked up.
"""

from __future__ import annotations

from triage.models import Identifiers, Ticket


def _requester_texts(ticket: Ticket) -> list[str]:
    """The description and the requester's own comments (by author id when known, else customer comments)."""
    requester_id = ticket.requester.id
    texts = [ticket.subject or "", ticket.description or ""]
    for comment in ticket.comments:
        if requester_id is not None and comment.author_id is not None:
            mine = comment.author_id == requester_id
        else:
            mine = comment.author_role.value == "customer"
        if mine:
            texts.append(comment.body or "")
    return texts


def requester_scope(ticket: Ticket, text_ticket: Ticket, identifiers: Identifiers) -> dict[str, object]:
    """`Intake` fields for the requester: `requester_email`, `requester_ids` and `organization_refs`.

    `ticket` is the original record (for the requester's email); `text_ticket` is the ticket whose text the
    identifiers were extracted from (the redacted one), so the ids are matched against the same text.
    """
    email = (ticket.requester.email or "").strip().lower()
    texts = _requester_texts(text_ticket)
    ids: list[str] = []
    for value in [*identifiers.distinct_ids, *identifiers.person_ids]:
        if value and value not in ids and any(value in text for text in texts):
            ids.append(value)
    org = ticket.organization
    refs = [
        ref for ref in (str(org.id) if org and org.id is not None else "", org.name if org else "") if ref
    ]
    return {"requester_email": email, "requester_ids": ids, "organization_refs": refs}
