"""Re-triage decisions: only new PUBLIC comments by the CUSTOMER re-triage a ticket."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.retriage import (
    CUSTOMER_REPLIED,
    IntakeAction,
    intake_decision,
    new_customer_comments,
    retriage_reason,
    state_of,
)
from triage.models import AuthorRole, Comment, Ticket
from triage.store import TicketState


def comment(body: str, role: AuthorRole = AuthorRole.customer, public: bool = True) -> Comment:
    return Comment(body=body, author_role=role, public=public)


def ticket(*comments: Comment, minute: int = 0) -> Ticket:
    return Ticket(id=7, comments=list(comments), updated_at=datetime(2026, 1, 5, 10, minute, tzinfo=UTC))


BASE = ticket(comment("flags are broken"), comment("looking", AuthorRole.agent))


def test_state_of_counts_public_customer_comments_only() -> None:
    t = ticket(
        comment("a"),
        comment("internal", AuthorRole.agent, public=False),
        comment("agent reply", AuthorRole.agent),
        comment("private customer?", public=False),
        comment("trigger", AuthorRole.system),
        comment("b"),
    )
    state = state_of(t)
    assert state == TicketState(ticket_id=7, public_customer_comments=2, last_version=t.version_key)


def test_customer_reply_retriages() -> None:
    prev = state_of(BASE)
    newer = ticket(*BASE.comments, comment("still broken, HAR attached"), minute=5)
    assert retriage_reason(prev, newer) == CUSTOMER_REPLIED
    assert [c.body for c in new_customer_comments(prev, newer)] == ["still broken, HAR attached"]


def test_agent_comment_internal_note_status_change_do_not() -> None:
    prev = state_of(BASE)
    assert (
        retriage_reason(prev, ticket(*BASE.comments, comment("we're on it", AuthorRole.agent), minute=1))
        is None
    )
    assert (
        retriage_reason(
            prev, ticket(*BASE.comments, comment("note", AuthorRole.agent, public=False), minute=2)
        )
        is None
    )
    assert retriage_reason(prev, BASE.model_copy(update={"status": "pending"})) is None
    assert retriage_reason(None, BASE) is None


def test_intake_decision() -> None:
    prev = state_of(BASE)
    replied = ticket(*BASE.comments, comment("more info"), minute=3)
    assert intake_decision(None, False, BASE).action is IntakeAction.triage
    assert intake_decision(prev, True, replied).action is IntakeAction.retriage
    assert intake_decision(prev, True, replied, retriage_on_reply=False).action is IntakeAction.skip
    assert intake_decision(prev, True, BASE).action is IntakeAction.skip
    assert intake_decision(None, True, replied).action is IntakeAction.skip
