"""Layer 1: a deterministic intake from the (redacted) ticket, no model needed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from triage.intake.extraction import extract_identifiers
from triage.intake.injection import detect_injection
from triage.intake.routing import area_scores, best_playbook, prepare, score_playbooks
from triage.intake.scan import HEURISTIC_CHARS
from triage.intake.signals import (
    blast_radius_of,
    detect_language,
    issue_type_of,
    missing_info,
    symptom_keywords,
    timeframe_of,
    urgency_of,
)
from triage.models import AuthorRole, Intake, Ticket
from triage.playbooks import Playbook, SdkSpec, Vocabulary


def ticket_texts(ticket: Ticket) -> tuple[str, str]:
    """(customer text, all text): de-duplicated bodies; the description is usually the first comment."""
    customer: list[str] = []
    everything: list[str] = []
    seen: set[str] = set()
    for body, is_customer in [
        (ticket.description, True),
        *[(c.body, c.author_role == AuthorRole.customer) for c in ticket.comments],
    ]:
        key = (body or "").strip()
        if not key or key in seen:
            continue
        seen.add(key)
        everything.append(key)
        if is_customer:
            customer.append(key)
    return "\n\n".join(customer), "\n\n".join(everything)


def rule_intake(
    ticket: Ticket,
    playbooks: Mapping[str, Playbook],
    sdk_catalogue: Sequence[SdkSpec] | None = None,
    *,
    vocabulary: Vocabulary | None = None,
) -> Intake:
    """Layer 1: a deterministic intake from the (redacted) ticket; every identifier comes from it."""
    customer_text, all_text = ticket_texts(ticket)
    subject = ticket.subject or ""
    ids = extract_identifiers(subject + "\n\n" + all_text, sdk_catalogue, vocabulary)
    scores = score_playbooks(customer_text, ids, playbooks, subject=subject, tags=ticket.tags)
    book = best_playbook(scores, playbooks)
    scan = subject + "\n" + customer_text[:HEURISTIC_CHARS]
    prepared = prepare(scan)
    language = detect_language(scan)
    timeframe = timeframe_of(scan)
    injection = detect_injection(subject + "\n" + all_text)
    return Intake(
        product_area=book.id,
        area_scores=area_scores(scores),
        issue_type=issue_type_of(prepared, ticket.type, book.routing.issue_type),
        urgency=urgency_of(ticket.priority, prepared),
        blast_radius=blast_radius_of(prepared),
        timeframe=timeframe,
        language=language,
        identifiers=ids,
        symptom_keywords=symptom_keywords(subject, customer_text[:HEURISTIC_CHARS], ids, language, prepared),
        missing_info=missing_info(book, ids, timeframe),
        injection_suspected=injection,
        playbook_id=book.id,
        refined_by_model=False,
    )
