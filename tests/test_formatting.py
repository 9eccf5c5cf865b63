"""Example-based tests for formatting/: escaping, the card, the thread, drafts, modals, Markdown, text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from formatting.actions import (
    ACTION_FEEDBACK_DOWN,
    ACTION_FEEDBACK_UP,
    ACTION_KB,
    ACTION_PACKET,
    ACTION_REPLY,
    ACTION_RERUN,
    FEEDBACK_BLOCK,
    FEEDBACK_INPUT,
    REPLY_BLOCK,
    REPLY_INPUT,
    VIEW_FEEDBACK,
    VIEW_REPLY,
)
from formatting.cards import (
    CardState,
    error_message,
    feedback_modal,
    followup_message,
    kb_preview_message,
    notice_message,
    packet_messages,
    parent_message,
    reply_modal,
    report_messages,
    retriage_message,
)
from formatting.escape import (
    ZWJ,
    clip,
    clip_mrkdwn,
    escape_mrkdwn,
    is_safe_url,
    link,
    neutralize_mentions,
    plain_text,
    safe_mrkdwn,
    sanitize,
    slack_len,
    split_mrkdwn,
)
from formatting.limits import unsafe_markup, validate_message, validate_view
from formatting.markdown import kb_markdown, md_code, packet_markdown, report_markdown
from formatting.text import display_width, progress_line, report_text
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
    Ticket,
    TicketSummary,
    Timings,
    TriageReport,
    Urgency,
    Usage,
)
from triage.protocols import ProgressEvent

EXAMPLES = Path(__file__).resolve().parents[1] / "triage" / "examples"
HOSTILE = "<!channel> <@U123> <https://evil|click> @here @everyone <#C1> <!subteam^S1|@team>"


def ticket(number: int = 48291) -> TicketSummary:
    return TicketSummary.of(Ticket.model_validate(json.loads((EXAMPLES / f"{number}.json").read_text())))


def realistic_report(**overrides: Any) -> TriageReport:
    evidence = [
        Evidence(
            id="E1",
            source="posthog_mcp",
            tool="query_person_flags",
            status=EvidenceStatus.ok,
            title="Flag calls for user_8f3a2c",
            summary="12 of 14 /flags calls before identify() returned new-checkout-flow=false",
            url="https://us.posthog.com/project/1/person/user_8f3a2c",
            first_party=True,
        ),
        Evidence(
            id="E2",
            source="github",
            tool="search_issues",
            status=EvidenceStatus.ok,
            title="isFeatureEnabled returns false right after identify (#1543)",
            summary="Regression in 1.160.0, fixed by #1550 in 1.161.1",
            url="https://github.com/PostHog/posthog-js/issues/1543",
        ),
        Evidence(
            id="E3",
            source="registry",
            tool="npm_latest",
            status=EvidenceStatus.timeout,
            title="npm posthog-js",
        ),
    ]
    data: dict[str, Any] = {
        "run_id": "run-7f3a",
        "ticket": ticket(),
        "mode": ReportMode.llm,
        "summary": "Flags evaluate to false right after identify() since posthog-js 1.160.0.",
        "product_area": "feature_flags",
        "product_area_label": "Feature flags & experiments",
        "intake": Intake(product_area="feature_flags", language="en"),
        "evidence": evidence,
        "root_cause": Finding(
            statement="posthog-js 1.160.0 reloads flags before identify() completes",
            confidence=Confidence.confirmed,
            evidence_ids=["E1", "E2"],
        ),
        "known_bug": KnownBug(
            issue_url="https://github.com/PostHog/posthog-js/issues/1543",
            title="isFeatureEnabled false after identify",
            state="closed",
            fix_pr_url="https://github.com/PostHog/posthog-js/pull/1550",
            fix_merged=True,
            fixed_in="1.161.1",
            exact_match=True,
            evidence_ids=["E2"],
        ),
        "findings": [
            Finding(
                statement="Only same-page-load identifies", confidence=Confidence.likely, evidence_ids=["E1"]
            )
        ],
        "next_steps": [
            "Ask the customer to upgrade to posthog-js 1.161.1",
            "Suggest onFeatureFlags()",
            "Close",
        ],
        "questions_for_customer": ["Which posthog-js version is deployed now?"],
        "customer_reply_draft": "Hi Jane,\n\nThis is a known issue fixed in posthog-js 1.161.1.\n\nBest,\nSam",
        "escalation": Escalation(needed=False),
        "sources": [
            SourceStatus(source="posthog_mcp", status=EvidenceStatus.ok, count=1, ok=1, latency_ms=800),
            SourceStatus(source="github", status=EvidenceStatus.ok, count=1, ok=1, latency_ms=1200),
            SourceStatus(
                source="registry", status=EvidenceStatus.timeout, count=1, failed=1, latency_ms=5000
            ),
        ],
        "timings": Timings(fetch_ms=300, intake_ms=50, research_ms=5100, synthesis_ms=9000, total_ms=14500),
        "usage": Usage(
            calls=2, input_tokens=14200, output_tokens=1100, cache_read_tokens=9000, cost_usd=0.0613
        ),
    }
    data.update(overrides)
    return TriageReport(**data)


def done_card(report: TriageReport, **kw: Any) -> dict[str, Any]:
    return parent_message(
        CardState(ticket=report.ticket, run_id=report.run_id, status="done", report=report, **kw)
    )


def mrkdwn_texts(payload: dict[str, Any]) -> list[str]:
    out: list[str] = [payload.get("text", "")]

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                out.append(node["text"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(payload.get("blocks", []))
    return out


def all_text(payload: dict[str, Any]) -> str:
    return "\n".join(mrkdwn_texts(payload))


def buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [el for b in card["blocks"] if b["type"] == "actions" for el in b["elements"]]


# ---------------------------------------------------------------- escape


def test_escape_mrkdwn_is_exactly_three_characters_in_order() -> None:
    assert escape_mrkdwn("a & <b> &amp; 'q' \"d\"") == "a &amp; &lt;b&gt; &amp;amp; 'q' \"d\""


def test_neutralize_mentions_keeps_emails_and_breaks_broadcasts() -> None:
    out = neutralize_mentions("@here (@channel) @Everyone hi @jane, mail jane@acme.io")
    assert "@here" not in out and "@channel" not in out and "@Everyone" not in out and "@jane" not in out
    assert f"@{ZWJ}here" in out and "jane@acme.io" in out


def test_sanitize_drops_controls_and_bidi_but_keeps_rtl() -> None:
    out = sanitize("a\x00b\x1b[31mc\u202ed\r\ne\u2028f مرحبا\tg\ud800")
    assert out == "ab[31mcd\ne\nf مرحبا\tg"


def test_clip_never_exceeds_and_never_splits_pairs_or_entities() -> None:
    assert clip("hello", 10) == "hello"
    assert clip("hello world", 5) == "hell…"
    emoji = "😀" * 10  # 2 UTF-16 units each
    out = clip(emoji, 6)
    assert slack_len(out) <= 6 and out == "😀😀…"
    assert clip("a\ud83d\ude00b", 2, marker="") == "a"  # a surrogate pair held as two code points
    assert clip("&amp;&amp;", 8) == "&amp;…"
    assert clip("x&lt;", 4) == "x…"
    assert clip("abc", 0) == "" and clip("abcdef", 1) == "…"
    assert clip("ab@\u200dhere", 4) == "ab@…"


def test_clip_never_ends_on_a_high_surrogate_exposed_by_another_trim() -> None:
    # Dropping half an entity or a trailing ZWJ can leave a high surrogate last: that is trimmed too.
    assert clip("a\ud83d&amp;", 5, marker="") == "a"
    assert clip("a\ud83d\u200d&amp;", 6, marker="") == "a"
    assert clip("a\ud83d\u200d\ud83d&lt;", 6) == "a…"


def test_clip_mrkdwn_and_split_keep_links_whole() -> None:
    text = "see " + link("https://example.com/" + "a" * 50, "label") + " end"
    assert "<" not in clip_mrkdwn(text, 30)
    chunks = split_mrkdwn(("word " * 50 + text + "\n") * 10, 200)
    assert all(slack_len(c) <= 200 for c in chunks)
    assert all(c.count("<") == c.count(">") for c in chunks)


def test_plain_text_never_empty_and_bounded() -> None:
    assert plain_text("", 10) == "-"
    assert plain_text("\x00\x01", 10) == "-"
    assert plain_text("a\nb  c", 10) == "a b c"
    assert slack_len(plain_text("😀" * 100, 75)) <= 75


@pytest.mark.parametrize(
    ("url", "safe"),
    [
        ("https://github.com/PostHog/posthog-js/issues/1543", True),
        ("http://example.com/a?b=1&c=2", True),
        ("javascript:alert(1)", False),
        ("https://evil|click", False),
        ("https://a.com/<b>", False),
        ("https://a.com/a b", False),
        ("ftp://a.com/x", False),
        ("//a.com/x", False),
        ("", False),
        (None, False),
    ],
)
def test_is_safe_url(url: str | None, safe: bool) -> None:
    assert is_safe_url(url) is safe


def test_link_escapes_url_and_label() -> None:
    assert (
        link("http://a.com/?x=1&y=2", "<b> & @here")
        == f"<http://a.com/?x=1&amp;y=2|&lt;b&gt; &amp; @{ZWJ}here>"
    )
    assert link("https://evil.com/a|b", "click") == "click (https://evil.com/a|b)"
    assert link("javascript:alert(1)", "<x>") == "&lt;x&gt; (javascript:alert(1))"


# ---------------------------------------------------------------- the card


def test_realistic_report_card_renders_compact_and_valid() -> None:
    report = realistic_report()
    card = done_card(report, thread_url="https://acme.slack.com/archives/C1/p17000")
    assert validate_message(card) == [] and unsafe_markup(card) == []
    assert len(card["blocks"]) <= 3  # section, actions, context
    text = all_text(card)
    assert "<https://demo.zendesk.com/agent/tickets/48291|#48291 Feature flag" in text
    assert "🟠 High" in text and "Acme Analytics" in text and "Feature flags &amp; experiments" in text
    assert "🎯 _Confirmed by data_" in text and "[E1, E2]" in text
    assert "1. Ask the customer to upgrade" in text and "2. Suggest onFeatureFlags()" in text
    assert "Close" not in text  # only the top two steps
    assert "fixed in *1.161.1*" in text
    assert "<https://acme.slack.com/archives/C1/p17000|Full report in thread>" in text
    assert card["text"].startswith("#48291 Feature flag")
    ids = [b["action_id"] for b in buttons(card)]
    assert ids == [
        ACTION_REPLY,
        ACTION_KB,
        ACTION_PACKET,
        ACTION_RERUN,
        ACTION_FEEDBACK_UP,
        ACTION_FEEDBACK_DOWN,
    ]
    assert {b["value"] for b in buttons(card)} == {"run-7f3a"}
    assert buttons(card)[2].get("style") is None


@pytest.mark.parametrize(
    "overrides",
    [
        {
            "root_cause": Finding(
                statement="maybe a CDN issue", confidence=Confidence.suspected, evidence_ids=["E3"]
            )
        },
        {
            "escalation": Escalation(
                needed=True, team="Feature Flags", urgency=Urgency.p1, reason="blocks launch"
            )
        },
        {"root_cause": None},
    ],
)
def test_packet_button_first_and_primary_when_a_human_must_look(overrides: dict[str, Any]) -> None:
    card = done_card(realistic_report(**overrides))
    first = buttons(card)[0]
    assert first["action_id"] == ACTION_PACKET and first["style"] == "primary"
    assert sum(1 for b in buttons(card) if b.get("style") == "primary") == 1
    assert validate_message(card) == []


def test_evidence_only_is_visible_everywhere() -> None:
    report = realistic_report(
        mode=ReportMode.evidence_only, degraded_reason="ANTHROPIC_API_KEY not set", root_cause=None
    )
    card = done_card(report)
    assert "Evidence only — no model" in all_text(card)
    assert "ANTHROPIC_API_KEY not set" in all_text(card)
    assert "Evidence only — no model" in card["text"]
    thread = report_messages(report)
    assert "Evidence only — no model" in all_text(thread[0]) and "Evidence only" in thread[0]["text"]
    assert "Evidence only — no model" in report_markdown(report)
    assert "Evidence only — no model" in report_text(report)


def test_running_card_shows_sources_and_elapsed() -> None:
    state = CardState(
        ticket=ticket(),
        run_id="r1",
        status="researching",
        product_area="Feature flags & experiments",
        sources_done=["posthog_mcp", "github"],
        sources_pending=["registry"],
        elapsed_s=73,
    )
    card = parent_message(state)
    text = all_text(card)
    assert (
        "Researching" in text
        and "✅ posthog_mcp, github" in text
        and "⏳ registry" in text
        and "1m 13s" in text
    )
    assert not buttons(card)
    assert validate_message(card) == []
    queued = parent_message(
        state.model_copy(update={"status": "queued", "sources_done": [], "sources_pending": []})
    )
    assert "Queued" in all_text(queued) and validate_message(queued) == []


def test_failed_card_offers_rerun_only() -> None:
    card = parent_message(
        CardState(ticket=ticket(), run_id="r1", status="failed", error="Zendesk 503 <!here>")
    )
    assert "Triage failed" in all_text(card) and "Zendesk 503 &lt;!here&gt;" in all_text(card)
    assert [b["action_id"] for b in buttons(card)] == [ACTION_RERUN]
    assert validate_message(card) == [] and unsafe_markup(card) == []


def test_ticket_url_from_settings_wins_and_is_escaped() -> None:
    card = parent_message(
        CardState(
            ticket=ticket(),
            status="queued",
            ticket_url="https://acme.zendesk.com/agent/tickets/48291?a=1&b=2",
        )
    )
    assert "<https://acme.zendesk.com/agent/tickets/48291?a=1&amp;b=2|#48291" in all_text(card)


# ---------------------------------------------------------------- hostile text


def hostile_report() -> TriageReport:
    t = ticket(48330).model_copy(
        update={"subject": f"Events missing {HOSTILE}", "organization": "@channel Inc"}
    )
    ev = Evidence(
        id="E1 <@U1>",
        source="github <!here>",
        status=EvidenceStatus.ok,
        title=f"[click](https://evil) {HOSTILE}",
        summary=HOSTILE,
        url="https://evil.com/x|<!channel>",
    )
    return realistic_report(
        ticket=t,
        summary=HOSTILE,
        evidence=[ev],
        root_cause=Finding(statement=HOSTILE, confidence=Confidence.suspected, evidence_ids=["<!channel>"]),
        known_bug=KnownBug(issue_url="<!channel>", title=HOSTILE, fixed_in="<@U123>"),
        findings=[Finding(statement=HOSTILE)],
        next_steps=[HOSTILE, "@here do it"],
        ruled_out=[HOSTILE],
        checklist=[HOSTILE],
        questions_for_customer=[HOSTILE],
        customer_reply_draft=f"Hi ```{HOSTILE}```",
        escalation=Escalation(needed=True, team=HOSTILE, reason=HOSTILE),
        grading_notes=[HOSTILE],
        sources=[SourceStatus(source=HOSTILE, status=EvidenceStatus.error, count=1, failed=1)],
        run_id="run <!channel>",
    )


def all_payloads(report: TriageReport) -> list[dict[str, Any]]:
    packet = EscalationPacket(
        ticket=report.ticket,
        title=HOSTILE,
        summary=HOSTILE,
        impact=HOSTILE,
        environment=[HOSTILE],
        reproduction_steps=[HOSTILE],
        evidence=report.evidence,
        ruled_out=[HOSTILE],
        suspected_component=HOSTILE,
        owner_team=HOSTILE,
        root_cause=report.root_cause,
        known_bug=report.known_bug,
    )
    article = KbArticle(
        title=HOSTILE,
        problem=HOSTILE,
        symptoms=[HOSTILE],
        cause=HOSTILE,
        resolution_steps=[HOSTILE],
        affected_versions=HOSTILE,
        related_links=["https://evil|x", "https://posthog.com/docs/feature-flags", HOSTILE],
    )
    answer = FollowUpAnswer(answer=HOSTILE, evidence_ids=["<!here>"], extra_evidence=report.evidence)
    return [
        done_card(report, thread_url="https://x|<!channel>"),
        parent_message(
            CardState(
                ticket=report.ticket, status="researching", sources_done=[HOSTILE], sources_pending=[HOSTILE]
            )
        ),
        parent_message(CardState(ticket=report.ticket, status="failed", error=HOSTILE)),
        *report_messages(report),
        *packet_messages(packet),
        kb_preview_message(article, file_note=HOSTILE),
        followup_message(answer),
        retriage_message(report, realistic_report(), HOSTILE),
        retriage_message(report, None, HOSTILE),
        error_message(HOSTILE),
        notice_message(HOSTILE),
    ]


def test_control_sequences_never_survive_in_any_payload() -> None:
    for payload in all_payloads(hostile_report()):
        assert validate_message(payload) == []
        assert unsafe_markup(payload) == [], payload
        text = all_text(payload)
        for bad in ("<!channel>", "<@U123>", "<https://evil|click>", "<#C1>", "<!subteam", "<!here>"):
            assert bad not in text
        assert "@here" not in text and "@everyone" not in text and "@channel" not in text
    card = done_card(hostile_report())
    assert "&lt;!channel&gt;" in all_text(card)


def test_unsafe_markup_detects_raw_sequences() -> None:
    bad = {
        "text": "hi <!here>",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "@channel <@U1>"}}],
    }
    problems = unsafe_markup(bad)
    assert len(problems) == 3
    good = {
        "text": "x",
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "<https://a.com|a>"}}],
    }
    assert unsafe_markup(good) == []


def test_modals_escape_nothing_but_neutralise_labels() -> None:
    view = reply_modal("run <!channel>", ReplyDraft(language="es <@U1>", body="Hola <b> & @here"), True)
    assert validate_view(view) == [] and unsafe_markup(view) == []
    assert view["blocks"][0]["element"]["initial_value"] == "Hola <b> & @here"  # plain input: exact text


# ---------------------------------------------------------------- links and the thread


def test_links_from_evidence_only_when_safe() -> None:
    evidence = [
        Evidence(
            id="E1",
            source="github",
            status=EvidenceStatus.ok,
            title="Issue",
            url="https://github.com/a/b/issues/1",
        ),
        Evidence(id="E2", source="docs", status=EvidenceStatus.ok, title="Bad", url="javascript:alert(1)"),
        Evidence(id="E3", source="docs", status=EvidenceStatus.empty, title="Pipe", url="https://x.com/a|b"),
    ]
    text = all_text(report_messages(realistic_report(evidence=evidence))[0])
    assert "<https://github.com/a/b/issues/1|Issue>" in text
    assert "Bad (javascript:alert(1))" in text and "<javascript" not in text
    assert "Pipe (https://x.com/a|b)" in text and "⚪ *E3*" in text and "_(empty)_" in text


def test_report_thread_has_every_part() -> None:
    msgs = report_messages(realistic_report())
    assert len(msgs) == 1
    msg = msgs[0]
    assert msg["blocks"][0]["type"] == "header"
    text = all_text(msg)
    for part in (
        "*What's going on*",
        "*Root cause:* 🎯 _Confirmed by data_",
        "[E1, E2]",
        "🐛 *Known bug:*",
        "fixed in *1.161.1*",
        "*Evidence* — 3 items",
        "✅ *E1* posthog_mcp",
        "⏱️ *E3* registry",
        "*Next steps*",
        "*Questions for the customer*",
        "```\nHi Jane,",
        "✅ *Escalation:* not needed",
        "*Failed sources*",
        "🧮 14,200 in / 1,100 out tokens (9,000 cached)",
        "$0.0613",
        "total 14.5s",
    ):
        assert part in text, part
    assert msg["text"].startswith("Triage report for #48291")


def test_long_report_overflows_into_followup_messages() -> None:
    rows = [
        Evidence(id=f"E{i}", source="github", status=EvidenceStatus.ok, title="t" * 300, summary="s" * 1000)
        for i in range(200)
    ]
    report = realistic_report(evidence=rows, next_steps=[f"step {i} " * 40 for i in range(100)])
    msgs = report_messages(report)
    assert len(msgs) > 3
    for i, msg in enumerate(msgs):
        assert validate_message(msg) == [], i
        assert len(msg["blocks"]) <= 50
        if i:
            assert f"part {i + 1}/{len(msgs)}" in all_text(msg)
            assert msg["text"] == f"Triage report for #48291 (part {i + 1} of {len(msgs)})"
    joined = "\n".join(all_text(m) for m in msgs)
    assert all(f"*E{i}*" in joined for i in range(200))
    assert "… and 50 more" in joined  # next steps are capped at 50 and counted


def test_packet_messages_and_markdown() -> None:
    report = realistic_report()
    packet = EscalationPacket(
        ticket=report.ticket,
        title="Flags false after identify on posthog-js 1.160.0",
        summary="Enterprise users see flags false right after identify.",
        impact="Blocks checkout launch for ~40k MAU",
        environment=["posthog-js 1.160.0", "Chrome 131"],
        reproduction_steps=["identify()", "isFeatureEnabled() immediately"],
        evidence=report.evidence,
        owner_team="Feature Flags",
        urgency=Urgency.p2,
        root_cause=report.root_cause,
        known_bug=report.known_bug,
    )
    msgs = packet_messages(packet)
    assert all(validate_message(m) == [] for m in msgs)
    text = all_text(msgs[0])
    assert "Escalation packet" in msgs[0]["blocks"][0]["text"]["text"]
    assert "owner *Feature Flags*" in text and "*Reproduction*" in text and "1. identify()" in text
    md = packet_markdown(packet)
    assert (
        md.startswith("# Escalation: Flags false")
        and "## Reproduction" in md
        and "Owner: Feature Flags" in md
    )


def test_kb_followup_retriage_error_messages() -> None:
    article = KbArticle(
        title="Flags return false right after identify()",
        problem="After upgrading to posthog-js 1.160.0 …",
        symptoms=["isFeatureEnabled() false after identify()"],
        cause="A regression in 1.160.0",
        resolution_steps=["Upgrade to 1.161.1"],
        affected_versions="1.160.0",
        related_links=["https://github.com/PostHog/posthog-js/issues/1543"],
    )
    kb = kb_preview_message(article, file_note="Full draft attached as kb-48291.md")
    assert validate_message(kb) == [] and "kb-48291.md" in all_text(kb)
    md = kb_markdown(article)
    assert "## Resolution" in md and "1. Upgrade to 1.161.1" in md
    assert (
        "[https://github.com/PostHog/posthog-js/issues/1543](<https://github.com/PostHog/posthog-js/issues/1543>)"
        in md
    )

    follow = followup_message(FollowUpAnswer(answer="Yes, 1.161.1 fixes it.", evidence_ids=["E2"]))
    assert validate_message(follow) == [] and "Based on [E2]" in all_text(follow)

    previous = realistic_report(
        product_area="events_ingestion",
        product_area_label="Events & ingestion",
        root_cause=Finding(statement="ad blocker", confidence=Confidence.suspected),
        known_bug=None,
    )
    re = retriage_message(realistic_report(), previous, "We upgraded and it still fails <!channel>")
    text = all_text(re)
    assert validate_message(re) == [] and unsafe_markup(re) == []
    assert "Customer replied" in text and "&lt;!channel&gt;" in text
    assert "Events &amp; ingestion → *Feature flags &amp; experiments*" in text
    assert "❓ _Suspected_ → 🎯 _Confirmed by data_" in text
    assert "Now matches a known bug" in text and "Root cause (new)" in text
    same = retriage_message(realistic_report(), realistic_report(), "thanks")
    assert "Root cause: unchanged" in all_text(same) and "Area: unchanged" in all_text(same)

    err = error_message("Ticket 999 not found <@U1>")
    assert err["text"].startswith("⚠️") and unsafe_markup(err) == [] and validate_message(err) == []


# ---------------------------------------------------------------- modals


def test_reply_modal_writeback_and_not() -> None:
    view = reply_modal("run-1", ReplyDraft(language="es", body="Hola Lucía,\n\ngracias."), True)
    assert validate_view(view) == []
    assert view["callback_id"] == VIEW_REPLY and view["private_metadata"] == "run-1"
    assert view["submit"]["text"] == "Post internal note"
    block = view["blocks"][0]
    assert block["block_id"] == REPLY_BLOCK and block["element"]["action_id"] == REPLY_INPUT
    assert (
        block["element"]["multiline"] is True
        and block["element"]["initial_value"] == "Hola Lucía,\n\ngracias."
    )
    assert "PRIVATE internal note" in block["hint"]["text"]

    plain = reply_modal("run-1", ReplyDraft(body="x" * 5000), False)
    assert validate_view(plain) == [] and plain["submit"]["text"] == "Done"
    assert slack_len(plain["blocks"][0]["element"]["initial_value"]) <= 3000
    assert "clipped" in all_text(plain)


def test_feedback_modal() -> None:
    view = feedback_modal("run-1")
    assert validate_view(view) == []
    assert view["callback_id"] == VIEW_FEEDBACK and view["private_metadata"] == "run-1"
    assert view["blocks"][0]["block_id"] == FEEDBACK_BLOCK
    assert view["blocks"][0]["element"]["action_id"] == FEEDBACK_INPUT
    assert view["blocks"][0]["label"]["text"] == "What was wrong?"


# ---------------------------------------------------------------- validators can fail


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def test_validate_message_reports_every_violation() -> None:
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "b" * 76},
        "action_id": "a",
        "value": "v" * 2001,
    }
    payload = {
        "blocks": [section("x")] * 49
        + [
            section("y" * 3001),
            {"type": "header", "text": {"type": "mrkdwn", "text": "h" * 151}},
            {
                "type": "actions",
                "elements": [
                    button,
                    {"type": "button", "text": {"type": "plain_text", "text": "ok"}, "action_id": "a"},
                ],
            },
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11},
            {"type": "markdown", "text": "m" * 12001},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}] * 11},
            {
                "type": "input",
                "label": {"type": "plain_text", "text": "x"},
                "element": {"type": "plain_text_input"},
            },
            {"type": "section", "text": {"type": "mrkdwn", "text": "  "}},
        ]
    }
    errors = validate_message(payload)
    joined = "\n".join(errors)
    for needle in (
        "/text: a non-empty fallback text",
        "57 blocks, max 50",
        "/blocks/49/text/text: 3001 characters",
        "/blocks/50/text/type",
        "151 characters, max 150",
        "/blocks/51/elements/0/text/text: 76 characters, max 75",
        "/blocks/51/elements/0/value: 2001 characters",
        "duplicate action_id 'a'",
        "11 elements, max 10",
        "markdown blocks total 12001",
        "11 fields, max 10",
        "/blocks/54/fields/0/text: 2001 characters, max 2000",
        "'input' is not allowed in a message",
        "/blocks/56/text/text: must not be empty",
    ):
        assert needle in joined, needle
    assert validate_message({"text": "x" * 40001})[0].startswith("/text: 40001")


def test_validate_view_reports_violations() -> None:
    view = {
        "type": "modal",
        "title": {"type": "plain_text", "text": "t" * 25},
        "private_metadata": "p" * 3001,
        "blocks": [
            {
                "type": "input",
                "label": {"type": "plain_text", "text": "l"},
                "element": {"type": "plain_text_input", "initial_value": "i" * 3001, "max_length": 3000},
            }
        ]
        * 101,
    }
    joined = "\n".join(validate_view(view))
    for needle in (
        "/title/text: 25 characters, max 24",
        "/private_metadata: 3001 characters",
        "101 blocks, max 100",
        "initial_value: 3001 characters",
        "longer than max_length",
        "needs a submit button",
    ):
        assert needle in joined, needle


# ---------------------------------------------------------------- markdown and text


def test_report_markdown_escapes_input_and_keeps_reply_verbatim() -> None:
    report = realistic_report(
        summary="[click](https://evil) <script>alert(1)</script> # not a heading @here",
        customer_reply_draft="Use ```code``` and <b>",
        evidence=[
            Evidence(id="E1", source="gh", status=EvidenceStatus.ok, title="a | b", url="https://x.com/a|b")
        ],
    )
    md = report_markdown(report)
    assert "\\[click\\](https://evil)" in md and "\\<script\\>" in md
    assert "@here" not in md and f"@{ZWJ}here" in md
    assert "````text\nUse ```code``` and <b>\n````" in md
    assert "| a \\| b |" in md and "link (https://x.com/a\\|b)" in md
    assert md_code("no backticks").startswith("```text\n")


def test_report_text_is_aligned_and_strips_escapes() -> None:
    report = realistic_report(summary="red \x1b[31mALERT\x1b[0m")
    out = report_text(report)
    assert "\x1b" not in out
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.strip().startswith("ID"))
    finding_col = lines[header].index("FINDING")
    rows = [line for line in lines[header + 1 :] if line.startswith("  E")]
    assert len(rows) == 3
    assert all(display_width(r[:finding_col]) == finding_col and r[finding_col] != " " for r in rows)
    assert "Root cause  [Confirmed by data] [E1, E2]" in out
    assert display_width("😀a") == 3


def test_progress_lines() -> None:
    assert (
        progress_line(ProgressEvent(kind="phase", phase="research", elapsed_ms=1200, total=4))
        == "[   1.2s] ▸ research 0/4"
    )
    line = progress_line(
        ProgressEvent(
            kind="task_finished",
            source="github",
            description="search \x1b[2J",
            status="timeout",
            done=2,
            total=4,
        )
    )
    assert "\x1b" not in line and "⏱ github" in line and "(timeout) 2/4" in line
    assert "done" in progress_line(ProgressEvent(kind="done", elapsed_ms=5000))


def test_safe_mrkdwn_composes() -> None:
    assert safe_mrkdwn("<@U1>\x00 @here") == f"&lt;@{ZWJ}U1&gt; @{ZWJ}here"


def test_link_targets_cannot_broadcast_or_carry_credentials() -> None:
    from formatting.escape import link
    from formatting.limits import unsafe_markup

    shown = link("https://github.com/PostHog/posthog-js/issues/1@here?x=@channel#@everyone", "#1")
    assert shown == "<https://github.com/PostHog/posthog-js/issues/1%40here?x=%40channel#%40everyone|#1>"
    assert unsafe_markup({"text": shown}) == []
    assert link("https://www.npmjs.com/package/@posthog/react", "pkg").startswith(
        "<https://www.npmjs.com/package/%40posthog/react|"
    )
    from formatting.markdown import md_link

    assert md_link("https://github.com/PostHog/posthog-js/issues/1@here", "#1") == (
        "[\\#1](<https://github.com/PostHog/posthog-js/issues/1%40here>)"
    )
    # credentials in the netloc: shown as neutralised text, never as a link
    assert not link("https://user:pw@evil.example/x", "x").startswith("<")
