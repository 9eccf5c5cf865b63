"""Grading rules (DESIGN.md): code decides how sure a report may sound, whatever the model claimed."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from triage.grading import HUMAN_VERIFICATION, MOSTLY_FAILED_NOTE, grade, mostly_failed, subject_is_ticket
from triage.models import (
    Confidence,
    Escalation,
    Evidence,
    EvidenceStatus,
    Finding,
    Identifiers,
    Intake,
    KnownBug,
    ReportMode,
    Sdk,
    SourceStatus,
    TicketSummary,
    TriageReport,
)
from triage.prose import sanitize_reply, strip_slack_markup

OK = EvidenceStatus.ok
C, L, S = Confidence.confirmed, Confidence.likely, Confidence.suspected


def ev(eid: str, source: str = "github", status: EvidenceStatus = OK, **kw: object) -> Evidence:
    return Evidence(id=eid, source=source, status=status, title=f"{source} row {eid}", **kw)  # type: ignore[arg-type]


def sources_for(evidence: list[Evidence]) -> list[SourceStatus]:
    out: dict[str, SourceStatus] = {}
    for e in evidence:
        s = out.setdefault(e.source, SourceStatus(source=e.source, status=EvidenceStatus.error))
        s.count += 1
        if e.status == OK:
            s.ok += 1
            s.status = OK
        elif e.status.failed:
            s.failed += 1
    return list(out.values())


TICKET_IDS = Identifiers(
    flag_keys=["new-checkout"], sdks=[Sdk(name="posthog-js", version="1.160.0", package="posthog-js")]
)
GH = "https://github.com/PostHog/posthog-js"


def gh_row(eid: str, number: int = 1, **data: object) -> Evidence:
    base: dict[str, object] = {
        "repo": "PostHog/posthog-js",
        "number": number,
        "is_pr": False,
        "issue_state": "closed",
        "exact_match": True,
        "fix_pr_url": f"{GH}/pull/{number + 1}",
        "fix_merged": True,
        "fixed_in": "1.161.0",
    }
    base.update(data)
    return ev(eid, "github", url=f"{GH}/issues/{number}", data=base)


def report(evidence: list[Evidence], **kw: object) -> TriageReport:
    base: dict[str, object] = {
        "ticket": TicketSummary(id=1, subject="flags broken"),
        "mode": ReportMode.llm,
        "summary": "Flag evaluates false before identify.",
        "evidence": evidence,
        "sources": sources_for(evidence),
        "intake": Intake(identifiers=TICKET_IDS),
    }
    base.update(kw)
    return TriageReport(**base)  # type: ignore[arg-type]


MIXED = [
    ev("E1", "posthog_mcp", first_party=True, internal=True, subject="flag_key:new-checkout"),
    gh_row("E2"),
    ev("E3", "registry"),
    ev("E4", "docs", EvidenceStatus.empty),
]


def test_overclaim_without_first_party_drops_to_likely() -> None:
    r = grade(
        report(MIXED, root_cause=Finding(statement="SDK race", confidence=C, evidence_ids=["E2", "E3"]))
    )
    assert r.root_cause is not None and r.root_cause.confidence == L
    assert any("root cause: confirmed → likely" in n for n in r.grading_notes)


def test_first_party_ok_evidence_allows_confirmed() -> None:
    r = grade(report(MIXED, root_cause=Finding(statement="Flag inactive", confidence=C, evidence_ids=["E1"])))
    assert r.root_cause is not None and r.root_cause.confidence == C


def test_first_party_but_failed_does_not_confirm() -> None:
    rows = [ev("E1", "posthog_mcp", EvidenceStatus.error, first_party=True), ev("E2"), ev("E3", "registry")]
    r = grade(report(rows, root_cause=Finding(statement="x", confidence=C, evidence_ids=["E1", "E2"])))
    assert r.root_cause is not None and r.root_cause.confidence == L


def test_likely_needs_ok_evidence() -> None:
    r = grade(report(MIXED, findings=[Finding(statement="docs say", confidence=L, evidence_ids=["E4"])]))
    assert [f.confidence for f in r.findings] == [S]


def test_unknown_citation_removed_and_uncited_statements_handled() -> None:
    r = grade(
        report(
            MIXED,
            root_cause=Finding(statement="Outage (E99)", confidence=C, evidence_ids=["E99"]),
            findings=[
                Finding(statement="cited", confidence=L, evidence_ids=["E2", "E99"]),
                Finding(statement="uncited claim", confidence=L, evidence_ids=[]),
                Finding(statement="only bogus", confidence=C, evidence_ids=["E42"]),
            ],
        )
    )
    assert r.root_cause is not None
    assert r.root_cause.confidence == S and r.root_cause.evidence_ids == []
    assert "E99" not in r.root_cause.statement and r.root_cause.statement == "Outage"
    assert [(f.statement, f.evidence_ids) for f in r.findings] == [("cited", ["E2"])]
    assert any("E99" in n for n in r.grading_notes)
    # rule 5: a suspected root cause means a human verifies
    assert r.escalation.needed and HUMAN_VERIFICATION in r.escalation.reason


def test_inline_citation_counts() -> None:
    r = grade(report(MIXED, findings=[Finding(statement="Issue E2 matches", confidence=L, evidence_ids=[])]))
    assert r.findings and r.findings[0].evidence_ids == ["E2"]


def test_citation_of_unqueried_source_removed() -> None:
    rows = [*MIXED, ev("E5", "secret_tool", first_party=True)]
    sources = sources_for(MIXED)  # secret_tool never queried
    r = grade(
        report(rows, sources=sources, root_cause=Finding(statement="x", confidence=C, evidence_ids=["E5"]))
    )
    assert r.root_cause is not None and r.root_cause.evidence_ids == [] and r.root_cause.confidence == S


def test_mostly_failed_sources_cap_at_likely_and_say_so() -> None:
    rows = [
        ev("E1", "posthog_mcp", first_party=True),
        ev("E2", "github", EvidenceStatus.timeout),
        ev("E3", "registry", EvidenceStatus.error),
        ev("E4", "docs", EvidenceStatus.error),
    ]
    r = grade(report(rows, root_cause=Finding(statement="x", confidence=C, evidence_ids=["E1"])))
    assert r.root_cause is not None and r.root_cause.confidence == L
    assert MOSTLY_FAILED_NOTE in r.summary
    again = grade(r)  # idempotent: the summary note is not repeated
    assert again.summary.count(MOSTLY_FAILED_NOTE) == 1
    assert again.grading_notes == r.grading_notes


def test_known_bug_exact_and_released_allows_confirmed() -> None:
    bug = KnownBug(
        issue_url="https://github.com/PostHog/posthog-js/issues/1",
        fix_merged=True,
        fixed_in="1.161.0",
        exact_match=True,
        evidence_ids=["E2"],
    )
    r = grade(
        report(
            MIXED, known_bug=bug, root_cause=Finding(statement="bug #1", confidence=C, evidence_ids=["E2"])
        )
    )
    assert r.known_bug is not None and r.root_cause is not None
    assert r.root_cause.confidence == C
    assert not r.escalation.needed


def test_known_bug_not_released_not_exact_or_not_applicable_is_likely() -> None:
    for row in (
        gh_row("E2", fixed_in=None),
        gh_row("E2", fix_merged=False),
        gh_row("E2", exact_match=False),
        gh_row("E2", fixed_in="1.150.0"),  # the customer (1.160.0) already has the fix
    ):
        rows = [MIXED[0], row, *MIXED[2:]]
        bug = KnownBug(issue_url="", exact_match=True, evidence_ids=["E2"])
        r = grade(
            report(rows, known_bug=bug, root_cause=Finding(statement="b", confidence=C, evidence_ids=["E2"]))
        )
        assert r.root_cause is not None and r.root_cause.confidence == L, row.data


def test_known_bug_facts_come_from_the_row_not_the_model() -> None:
    claim = KnownBug(
        issue_url="https://github.com/PostHog/posthog-js/issues/424242",
        title="made up",
        state="closed",
        fix_pr_url="https://evil.example/pr",
        fix_merged=True,
        fixed_in="9.9.9",
        exact_match=True,
        evidence_ids=["E2"],
    )
    r = grade(report(MIXED, known_bug=claim))
    assert r.known_bug is not None
    assert r.known_bug.issue_url == f"{GH}/issues/1" and r.known_bug.fixed_in == "1.161.0"
    assert r.known_bug.fix_pr_url == f"{GH}/pull/2" and r.known_bug.title == "github row E2"
    assert any("taken from E2, not from the model" in n for n in r.grading_notes)


def test_known_bug_citing_a_non_github_row_is_dropped() -> None:
    for eid in ("E1", "E3", "E4"):  # first-party, registry, docs
        claim = KnownBug(issue_url=f"{GH}/issues/9", fix_merged=True, fixed_in="9.9.9", exact_match=True)
        r = grade(report(MIXED, known_bug=claim.model_copy(update={"evidence_ids": [eid]})))
        assert r.known_bug is None and any("known bug dropped" in n for n in r.grading_notes)


def test_exact_match_needs_the_rows_own_signal() -> None:
    rows = [MIXED[0], gh_row("E2", exact_match=False), *MIXED[2:]]
    r = grade(report(rows, known_bug=KnownBug(issue_url="", exact_match=True, evidence_ids=["E2"])))
    assert r.known_bug is not None and not r.known_bug.exact_match


def test_confirmed_needs_data_about_this_tickets_object() -> None:
    for subject, why in (
        ("flag_key:other-flag", "about flag_key:other-flag"),
        ("", "does not name"),
        ("survey:new-checkout", "about survey:new-checkout"),  # right value, wrong kind
    ):
        rows = [MIXED[0].model_copy(update={"subject": subject}), *MIXED[1:]]
        r = grade(report(rows, root_cause=Finding(statement="Data loss", confidence=C, evidence_ids=["E1"])))
        assert r.root_cause is not None and r.root_cause.confidence == L
        assert any(why in n for n in r.grading_notes), r.grading_notes
    docs = ev("E5", "docs", first_party=True, subject="flag_key:new-checkout")
    r = grade(report([*MIXED, docs], root_cause=Finding(statement="x", confidence=C, evidence_ids=["E5"])))
    assert r.root_cause is not None and r.root_cause.confidence == L


def test_subject_matching() -> None:
    intake = Intake(identifiers=TICKET_IDS)
    assert subject_is_ticket("flag_key:NEW-CHECKOUT", intake)
    assert subject_is_ticket("sdk:posthog-js@1.160.0", intake)
    assert subject_is_ticket("sdk:posthog-js", intake)
    assert not subject_is_ticket("sdk:posthog-js@1.159.0", intake)
    assert not subject_is_ticket("flag_key:", intake) and not subject_is_ticket("new-checkout", intake)


def test_known_bug_with_invalid_citations_dropped() -> None:
    bug = KnownBug(issue_url="u", fix_merged=True, fixed_in="1.2.0", exact_match=True, evidence_ids=["E77"])
    r = grade(report(MIXED, known_bug=bug))
    assert r.known_bug is None
    assert any("known bug dropped" in n for n in r.grading_notes)


def test_slack_markup_stripped_from_model_text() -> None:
    r = grade(
        report(
            MIXED,
            summary="<!channel> look <@U123ABC> at <https://evil.example|this> and <#C1|general>",
            findings=[Finding(statement="<!here> E2 says so", confidence=L, evidence_ids=["E2"])],
            next_steps=["ping <!subteam^S1|@oncall>"],
            escalation=Escalation(needed=True, reason="<!everyone> now"),
            customer_reply_draft="Hi <@U999>, see E1 and <https://internal.example/x|dashboard>",
        )
    )
    for text in [
        r.summary,
        r.findings[0].statement,
        *r.next_steps,
        r.escalation.reason,
        r.customer_reply_draft,
    ]:
        assert "<!" not in text and "<@" not in text and "<http" not in text and "<#" not in text
    assert "this ([link removed])" in r.summary  # the label stays as words, the unknown URL goes
    assert "E1" not in r.customer_reply_draft  # replies never cite evidence ids


def test_reply_never_cites_internal_evidence() -> None:
    rows = [
        ev("E1", "posthog_mcp", first_party=True, internal=True, url="https://app.internal/person/1"),
        ev("E2"),
    ]
    text = sanitize_reply("We checked https://app.internal/person/1 (E1) and E2.", rows)
    assert "app.internal" not in text and "E1" not in text and "E2" not in text


def test_injection_caps_at_likely_unless_first_party() -> None:
    bug = KnownBug(issue_url="u", fix_merged=True, fixed_in="1.2.0", exact_match=True, evidence_ids=["E2"])
    inj = Intake(injection_suspected=True, identifiers=TICKET_IDS)
    r = grade(
        report(
            MIXED,
            intake=inj,
            known_bug=bug,
            root_cause=Finding(statement="x", confidence=C, evidence_ids=["E2"]),
        )
    )
    assert r.root_cause is not None and r.root_cause.confidence == L
    assert any("prompt injection" in n for n in r.grading_notes)
    r2 = grade(
        report(MIXED, intake=inj, root_cause=Finding(statement="x", confidence=C, evidence_ids=["E1"]))
    )
    assert r2.root_cause is not None and r2.root_cause.confidence == C


def test_evidence_only_without_root_cause_escalates() -> None:
    r = grade(report(MIXED, mode=ReportMode.evidence_only, root_cause=None))
    assert r.escalation.needed and r.escalation.reason.startswith(HUMAN_VERIFICATION)


def test_grade_is_pure() -> None:
    original = report(MIXED, root_cause=Finding(statement="x", confidence=C, evidence_ids=["E2"]))
    snapshot = original.model_dump()
    grade(original)
    assert original.model_dump() == snapshot


def test_strip_slack_markup_plain_text_untouched() -> None:
    assert strip_slack_markup("a < b and c > d") == "a < b and c > d"
    assert strip_slack_markup("<mailto:a@b.c|mail>") == "mail (mailto:a@b.c)"


_ids = st.lists(st.sampled_from(["E1", "E2", "E3", "E4", "E9", "E99", "X"]), max_size=4)
_conf = st.sampled_from(list(Confidence))


@settings(max_examples=150, deadline=None)
@given(
    root=st.none() | st.tuples(_conf, _ids),
    findings=st.lists(st.tuples(_conf, _ids), max_size=4),
    statuses=st.lists(st.sampled_from(list(EvidenceStatus)), min_size=4, max_size=4),
    first_party=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_graded_reports_obey_the_rules(
    root: tuple[Confidence, list[str]] | None,
    findings: list[tuple[Confidence, list[str]]],
    statuses: list[EvidenceStatus],
    first_party: list[bool],
) -> None:
    rows = [
        ev(
            f"E{i + 1}",
            ["posthog_mcp", "github", "registry", "docs"][i],
            statuses[i],
            first_party=first_party[i],
            subject="flag_key:new-checkout" if i == 0 else "",
        )
        for i in range(4)
    ]
    r = grade(
        report(
            rows,
            root_cause=Finding(statement="rc", confidence=root[0], evidence_ids=root[1]) if root else None,
            findings=[
                Finding(statement=f"f{i}", confidence=c, evidence_ids=ids)
                for i, (c, ids) in enumerate(findings)
            ],
        )
    )
    by_id = r.evidence_by_id()
    statements = [*r.findings, *([r.root_cause] if r.root_cause else [])]
    for f in statements:
        assert all(i in by_id for i in f.evidence_ids)
        ok = [by_id[i] for i in f.evidence_ids if by_id[i].status == OK]
        if f.confidence == C:
            assert any(e.first_party and e.subject for e in ok)
        if f.confidence in (C, L):
            assert ok
    for f in r.findings:
        assert f.evidence_ids
    if r.root_cause and r.root_cause.confidence == S:
        assert r.escalation.needed
    if mostly_failed(r)[0]:
        assert all(f.confidence != C for f in statements)
        assert MOSTLY_FAILED_NOTE in r.summary
    assert grade(r) == r  # grading is idempotent
