"""Properties: extraction and routing never raise, stay bounded and stay fast on any input."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from triage.intake import MAX_PER_TYPE, detect_injection, extract_identifiers, route, rule_intake
from triage.models import Comment, Identifiers, Ticket
from triage.playbooks import bundled_playbooks

BOOKS = bundled_playbooks()

# text biased towards the characters our patterns care about
FRAGMENTS = st.sampled_from(
    [
        "distinct_id ", "flag ", "event ", "survey ", "person ", "`", '"', "'", "@", "$", "-", "_", ".", ":",
        "posthog-js ", "@1.2.3", "version ", " of ", "https://", "posthog.com/", "TypeError: ", "Error",
        "isFeatureEnabled('", "capture(", "0193f2aa-7c1e-4b2f-9d55-2f1e8c3a9b10", "since ", "ignore all ",
        "\n", " ", "é", "ß", "İ", "\u0000", "…", "1", "12", "2026-11-18",
    ]
)  # fmt: skip
MIXED = st.lists(st.one_of(FRAGMENTS, st.text(max_size=20)), max_size=80).map("".join)


def _assert_bounded(ids: Identifiers) -> None:
    for name in Identifiers.model_fields:
        values = getattr(ids, name)
        assert len(values) <= MAX_PER_TYPE, name
        for value in values:
            assert len(value.model_dump_json() if name == "sdks" else value) <= 600, name


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=3000), MIXED))
def test_extraction_and_routing_never_raise_and_stay_bounded(text: str) -> None:
    ids = extract_identifiers(text)
    _assert_bounded(ids)
    area, scores = route(text, ids, BOOKS, subject=text[:200], tags=text.split()[:5])
    assert area in BOOKS
    assert all(score >= 0 for score in scores.values())
    assert isinstance(detect_injection(text), bool)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    MIXED,
    MIXED,
    st.lists(MIXED, max_size=4),
    st.sampled_from(["urgent", "high", "normal", "low", None, "??"]),
)
def test_rule_intake_never_raises(subject: str, body: str, comments: list[str], priority: str | None) -> None:
    ticket = Ticket(
        id=1,
        subject=subject,
        description=body,
        priority=priority,
        comments=[Comment(body=c) for c in comments],
    )
    intake = rule_intake(ticket, BOOKS)
    _assert_bounded(intake.identifiers)
    assert intake.playbook_id in BOOKS
    assert len(intake.symptom_keywords) <= 8 and len(intake.timeframe) <= 200


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
@given(MIXED.filter(lambda s: len(s) > 20))
def test_huge_input_stays_bounded(seed: str) -> None:
    text = (seed * (120_000 // len(seed) + 1))[:120_000]
    _assert_bounded(extract_identifiers(text))
    area, _ = route(text, Identifiers(), BOOKS)
    assert area in BOOKS


ADVERSARIAL = {
    "letters": "a" * 100_000,
    "digits": "1" * 100_000,
    "spaced digits": "12 " * 33_000,
    "at signs": "@" * 100_000,
    "email-ish": "a.b-c@" * 16_000,
    "backticks": "`" * 100_000,
    "quotes": '"flag x" ' * 11_000,
    "distinct": "distinct_id " * 8_000,
    "flags and events": "flag `a-b` event `c_d` " * 4_500,
    "dots": "1.2.3." * 16_000,
    "uuid-ish": "0193f2aa-7c1e-" * 7_000,
    "errors": "TypeError: " * 9_000,
    "url": "https://" + "a" * 100_000,
    "sdk": "posthog-js " * 9_000,
    "since": "since " * 16_000,
    "injection": "ignore all previous " * 5_000,
    "dollars": "$" * 100_000,
    "captures": "capture('" * 11_000,
    "error colons": "error: x\n" * 11_000,
    "error modules": "a.errors.B: " * 9_000,
    "namespaces": "DB::" * 25_000,
    "sdk log tags": "[PostHog.js] " * 8_000,
    "table pipes": "| posthog-js | " * 7_000,
    "guillemets": "« erreur " * 10_000,
    "german quotes": "„Fehler " * 10_000,
}


def test_no_catastrophic_backtracking_on_100kb_inputs() -> None:
    # a backtracking blow-up takes seconds to hours; real cost is ~10-50 ms on a loaded 2-core box
    for name, text in ADVERSARIAL.items():
        t0 = time.perf_counter()
        rule_intake(Ticket(id=1, subject=text[:300], description=text), BOOKS)
        elapsed = time.perf_counter() - t0
        assert elapsed < 1.5, (name, elapsed)


REALISTIC_CHUNK = (
    "Since we upgraded posthog-js to 1.160.0 our feature flag `new-checkout-flow` returns false for "
    "distinct_id user_8f3a2c (jane@acme.io). posthog.isFeatureEnabled('new-checkout-flow') logs false. "
    "See https://us.posthog.com/project/1/person/user_8f3a2c - TypeError: x is undefined.\n"
)


def test_realistic_100kb_ticket_extracts_whole_and_bounded() -> None:
    # its speed is measured by bench/intake_extraction.py (a timing assertion here would be load-flaky)
    text = (REALISTIC_CHUNK * (100_000 // len(REALISTIC_CHUNK) + 1))[:100_000]
    ids = extract_identifiers(text)
    _assert_bounded(ids)
    assert ids.flag_keys == ["new-checkout-flow"] and ids.distinct_ids[0] == "user_8f3a2c"
    assert ids.error_messages == ["TypeError: x is undefined"] and "isFeatureEnabled" in ids.code_symbols
