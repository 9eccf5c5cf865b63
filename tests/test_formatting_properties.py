"""Property tests: hostile reports always render into valid, markup-free Slack payloads."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from formatting.cards import (
    CardState,
    feedback_modal,
    followup_message,
    kb_preview_message,
    packet_messages,
    parent_message,
    reply_modal,
    report_messages,
    retriage_message,
)
from formatting.escape import clip, escape_mrkdwn, safe_mrkdwn, slack_len, split_mrkdwn
from formatting.limits import unsafe_markup, validate_message, validate_view
from formatting.markdown import kb_markdown, packet_markdown, report_markdown
from formatting.text import report_text
from triage.models import (
    Confidence,
    Escalation,
    EscalationPacket,
    Evidence,
    EvidenceStatus,
    Finding,
    FollowUpAnswer,
    Intake,
    KbArticle,
    KnownBug,
    ReplyDraft,
    ReportMode,
    SourceStatus,
    TicketSummary,
    Timings,
    TriageReport,
    Urgency,
    Usage,
)
from triage.playbooks import bundled_playbooks

PROFILE = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)

TOKENS = [
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<@U123>",
    "<#C123|general>",
    "<!subteam^S1|@oncall>",
    "<https://evil|click>",
    "[click](https://evil)",
    "@here",
    "@channel",
    "@everyone",
    "&amp;",
    "&lt;",
    "&",
    "<",
    ">",
    "|",
    "```",
    "*bold*",
    "_it_",
    "~s~",
    ":rotating_light:",
    "\x00",
    "\x1b[31m",
    "\u202e",
    "\u200d",
    "\r\n",
    "\n",
    "\t",
    "😀",
    "👩‍👩‍👧",
    "🇪🇸",
    "مرحبا بالعالم",
    "שלום",
    "日本語",
    "e\u0301",
    "\ud83d",  # a lone surrogate
    "https://github.com/PostHog/posthog-js/issues/1",
    " ",
    "word",
]

token = st.sampled_from(TOKENS)
chars = st.characters(exclude_categories=())  # every code point, surrogates and controls included
short_text = st.lists(st.one_of(token, st.text(chars, max_size=8)), max_size=12).map("".join)
long_text = st.builds(lambda s, n: (s or "x") * n, short_text, st.integers(1, 10_000)).map(
    lambda s: s[:12_000]
)
text = st.one_of(short_text, short_text, long_text)
url = st.one_of(
    st.none(),
    st.sampled_from(
        [
            "https://github.com/PostHog/posthog-js/issues/1543",
            "http://example.com/?a=1&b=<2>",
            "https://evil.com/a|b",
            "javascript:alert(1)",
            "https://" + "a" * 3000 + ".com",
            "https://example.com/" + "&" * 900,
            "",
        ]
    ),
    short_text,
)
ids = st.lists(st.one_of(st.sampled_from(["E1", "E2", "E17"]), short_text), max_size=20)


def repeated(strategy: st.SearchStrategy[Any], max_base: int, max_times: int) -> st.SearchStrategy[list[Any]]:
    """Large lists cheaply: a few generated items repeated up to `max_times` times."""
    return st.builds(
        lambda items, n: items * n, st.lists(strategy, max_size=max_base), st.integers(1, max_times)
    )


evidence = st.builds(
    Evidence,
    id=st.one_of(st.sampled_from(["E1", "E2"]), short_text),
    source=short_text,
    tool=short_text,
    query=short_text,
    status=st.sampled_from(list(EvidenceStatus)),
    title=text,
    summary=text,
    url=url,
    excerpt=text,
    internal=st.booleans(),
)
finding = st.builds(Finding, statement=text, confidence=st.sampled_from(list(Confidence)), evidence_ids=ids)
known_bug = st.builds(
    KnownBug,
    issue_url=st.one_of(url.map(lambda u: u or ""), short_text),
    title=text,
    state=short_text,
    fix_pr_url=url,
    fix_merged=st.booleans(),
    fixed_in=st.one_of(st.none(), short_text),
    exact_match=st.booleans(),
    evidence_ids=ids,
)
ticket = st.builds(
    TicketSummary,
    id=st.integers(1, 10**12),
    url=url.map(lambda u: u or ""),
    subject=text,
    priority=st.one_of(st.none(), st.sampled_from(["urgent", "high", "normal", "low"]), short_text),
    organization=text,
    requester=short_text,
)
usage = st.builds(
    Usage,
    calls=st.integers(0, 50),
    input_tokens=st.integers(0, 10**7),
    output_tokens=st.integers(0, 10**6),
    cache_read_tokens=st.integers(0, 10**7),
    cost_usd=st.floats(0, 1000, allow_nan=False),
)
report = st.builds(
    TriageReport,
    run_id=short_text,
    ticket=ticket,
    mode=st.sampled_from(list(ReportMode)),
    summary=text,
    product_area=st.sampled_from(sorted(bundled_playbooks())),
    intake=st.builds(Intake, language=short_text),
    evidence=repeated(evidence, 5, 40),  # up to 200 rows
    root_cause=st.one_of(st.none(), finding),
    known_bug=st.one_of(st.none(), known_bug),
    findings=repeated(finding, 3, 30),
    ruled_out=repeated(text, 3, 30),
    next_steps=repeated(text, 4, 25),  # up to 100 steps
    checklist=repeated(short_text, 3, 10),
    questions_for_customer=repeated(text, 3, 10),
    customer_reply_draft=text,
    escalation=st.builds(
        Escalation, needed=st.booleans(), reason=text, team=short_text, urgency=st.sampled_from(list(Urgency))
    ),
    sources=st.lists(
        st.builds(
            SourceStatus,
            source=short_text,
            status=st.sampled_from(list(EvidenceStatus)),
            count=st.integers(0, 100),
            failed=st.integers(0, 100),
            latency_ms=st.integers(0, 10**6),
        ),
        max_size=12,
    ),
    timings=st.builds(Timings, total_ms=st.integers(0, 10**7)),
    usage=usage,
    grading_notes=st.lists(text, max_size=15),
    degraded_reason=text,
)


def mrkdwn_strings(payload: dict[str, Any]) -> list[str]:
    out = [payload.get("text", "")]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                out.append(node["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(payload.get("blocks"))
    return out


def assert_safe_message(payload: dict[str, Any]) -> None:
    assert validate_message(payload) == [], validate_message(payload)
    assert unsafe_markup(payload) == [], unsafe_markup(payload)
    for s in mrkdwn_strings(payload):
        assert "\x00" not in s and "\x1b" not in s and "\u202e" not in s
        s.encode("utf-8")  # no lone surrogates: Slack's JSON must be valid UTF-8


@PROFILE
@given(report, st.sampled_from(["queued", "researching", "synthesizing", "done", "failed"]), short_text, url)
def test_cards_and_threads_are_always_valid(
    r: TriageReport, status: Any, error: str, thread: str | None
) -> None:
    state = CardState(
        ticket=r.ticket,
        run_id=r.run_id,
        status=status,
        product_area=r.product_area_label,
        sources_done=[s.source for s in r.sources],
        sources_pending=[e.source for e in r.evidence[:30]],
        elapsed_s=r.timings.total_ms / 1000,
        error=error,
        report=r,
        thread_url=thread or "",
        ticket_url=r.ticket.url,
    )
    assert_safe_message(parent_message(state))
    messages = report_messages(r)
    assert messages
    for message in messages:
        assert_safe_message(message)
    assert_safe_message(retriage_message(r, None, r.summary))
    assert_safe_message(
        retriage_message(r, r.model_copy(update={"root_cause": None, "known_bug": None}), error)
    )


@settings(PROFILE, max_examples=20)
@given(report)
def test_markdown_and_text_never_carry_controls(r: TriageReport) -> None:
    md = report_markdown(r)
    md.encode("utf-8")  # valid UTF-8: no lone surrogates
    out = report_text(r)
    out.encode("utf-8")
    for s in (md, out):
        assert "\x1b" not in s and "\x00" not in s and "\u202e" not in s
    assert "@here" not in md and "@channel" not in md and "@everyone" not in md


@PROFILE
@given(
    ticket,
    text,
    repeated(text, 3, 20),
    repeated(evidence, 4, 30),
    st.one_of(st.none(), finding),
    st.one_of(st.none(), known_bug),
)
def test_packets_kb_followups_are_always_valid(
    t: TicketSummary,
    body: str,
    items: list[str],
    evs: list[Evidence],
    rc: Finding | None,
    bug: KnownBug | None,
) -> None:
    packet = EscalationPacket(
        ticket=t,
        title=body,
        summary=body,
        impact=body,
        environment=items,
        reproduction_steps=items,
        evidence=evs,
        ruled_out=items,
        suspected_component=body[:200],
        owner_team=body[:100],
        root_cause=rc,
        known_bug=bug,
    )
    for message in packet_messages(packet):
        assert_safe_message(message)
    article = KbArticle(
        title=body,
        problem=body,
        symptoms=items,
        cause=body,
        resolution_steps=items,
        affected_versions=body[:300],
        related_links=items[:20],
    )
    assert_safe_message(kb_preview_message(article, file_note=body))
    assert_safe_message(
        followup_message(FollowUpAnswer(answer=body, evidence_ids=items[:30], extra_evidence=evs))
    )
    packet_markdown(packet).encode("utf-8")
    kb_markdown(article).encode("utf-8")


@PROFILE
@given(short_text, text, st.booleans())
def test_modals_are_always_valid(run_id: str, body: str, writeback: bool) -> None:
    for view in (
        reply_modal(run_id, ReplyDraft(language=run_id, body=body), writeback),
        feedback_modal(run_id),
    ):
        assert validate_view(view) == [], validate_view(view)
        assert unsafe_markup(view) == []


@PROFILE
@given(text, st.integers(0, 400), st.sampled_from(["…", "", "...", "😀"]))
@example("\ud83d&", 5, "")  # found by hypothesis: the entity cut left a lone high surrogate last
def test_clip_properties(s: str, limit: int, marker: str) -> None:
    escaped = escape_mrkdwn(s)
    out = clip(escaped, limit, marker)
    assert slack_len(out) <= limit
    body = out[: len(out) - len(marker)] if marker and out != escaped and out.endswith(marker) else out
    assert escaped.startswith(body)
    if body and out != escaped:  # something was cut: never half a pair or half an entity
        assert not ("\ud800" <= body[-1] <= "\udbff")
        tail = body[body.rfind("&") :] if "&" in body[-4:] else ""
        assert not tail or ";" in tail or not any(e.startswith(tail) for e in ("&amp;", "&lt;", "&gt;"))


@PROFILE
@given(text, st.integers(20, 3000))
def test_split_properties(s: str, limit: int) -> None:
    safe = safe_mrkdwn(s)
    chunks = split_mrkdwn(safe, limit)
    assert all(c.strip() and slack_len(c) <= limit for c in chunks)
    assert "".join("".join(chunks).split()) == "".join(safe.split())  # nothing lost but whitespace
    for broadcast in ("@here", "@channel", "@everyone"):
        assert broadcast not in safe
    assert "<" not in safe and ">" not in safe
