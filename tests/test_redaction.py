"""Redaction: every secret kind, Luhn, email/phone flags, tickets, the log filter, and a property test."""

from __future__ import annotations

import io
import json
import logging
import string
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.models import (
    Comment,
    Evidence,
    EvidenceStatus,
    Organization,
    Person,
    Ticket,
    TicketSummary,
    TriageReport,
)
from triage.redaction import (
    REQUESTER_EMAIL,
    Redactor,
    SecretFilter,
    lookup_scope,
    luhn_ok,
    redact_secrets,
    reveal,
    storable,
)

SECRETS = {
    "posthog_key": "phc_Zx81kLmQ2rT5vW9yB3nC6dF0gH4jK7pS1aE8uI2oL3",
    "posthog_personal_key": "phx_4f9aKq2LmN8pR1sT6vW3yZ0bC5dE7gH9jK2mN4pQ",
    "github_token": "ghp_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ12",
    "github_oauth": "gho_16C7e42F292c6912E7710c838347Ae178B4a",
    "github_server": "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
    "github_pat": "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ",
    "slack_bot": "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx",
    "slack_user": "xoxp-1234567890-0987654321-1122334455-abcdef0123456789",
    "slack_app": "xapp-1-A0123456789-1234567890123-abcdef0123456789abcdef",
    "slack_refresh": "xoxe.xoxp-1-Mi0yLTEyMzQ1Njc4OTAtMTIzNDU2Nzg5MA",
    "anthropic": "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_abcdEF",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
}


@pytest.mark.parametrize("name", sorted(SECRETS))
def test_each_secret_kind_is_masked(name: str) -> None:
    secret = SECRETS[name]
    out = Redactor(emails=False, phones=False).redact(f"here it is: {secret} (don't share)")
    assert secret not in out
    assert "[redacted:" in out and out.startswith("here it is: ") and out.endswith("(don't share)")


def test_mask_names_the_kind() -> None:
    r = Redactor()
    assert r.redact("key phc_Zx81kLmQ2rT5vW9yB3nC6dF0gH4jK7pS1aE8uI2oL3.") == "key [redacted:posthog_key]."
    assert r.redact(SECRETS["github_token"]) == "[redacted:github_token]"
    assert r.redact(SECRETS["aws"]) == "[redacted:aws_key]"
    assert r.redact(SECRETS["anthropic"]) == "[redacted:anthropic_key]"


def test_headers_and_assignments_keep_their_names() -> None:
    r = Redactor()
    assert r.redact("Authorization: Bearer abcdef0123456789") == "Authorization: [redacted:authorization]"
    assert (
        r.redact("curl -H 'authorization: Token zz9988776655'")
        == "curl -H 'authorization: [redacted:authorization]'"
    )
    assert r.redact("send Bearer abc.def-ghi_123 along") == "send Bearer [redacted:bearer_token] along"
    assert r.redact('{"api_key": "s3cr3t-value"}') == '{"api_key": "[redacted:secret]"}'
    assert r.redact("password=hunter2hunter2 ok") == "password=[redacted:secret] ok"


def test_luhn() -> None:
    assert luhn_ok("4242424242424242") and luhn_ok("378282246310005")
    assert not luhn_ok("4242424242424241")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("card 4242 4242 4242 4242 thanks", True),
        ("card 4242-4242-4242-4242 thanks", True),
        ("amex 378282246310005", True),
        ("card 4242 4242 4242 4241 thanks", False),  # Luhn fails
        ("order 1234567812345670", False),  # Luhn-valid, but a bare number not shaped like a card
        ("ts 1700000000", False),
    ],
)
def test_card_numbers(text: str, masked: bool) -> None:
    out = Redactor().redact(text)
    assert ("[redacted:card]" in out) is masked


def test_email_and_phone_flags() -> None:
    text = "Mail jane@acme-analytics.io or call +1 415 555 0134 / (415) 555-0134."
    assert Redactor().redact(text) == "Mail [redacted:email] or call [redacted:phone] / [redacted:phone]."
    assert (
        Redactor(emails=False).redact(text).startswith("Mail jane@acme-analytics.io or call [redacted:phone]")
    )
    assert "+1 415 555 0134" in Redactor(phones=False).redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "at 2026-11-18T09:12:00Z",
        "on 2026-11-18 and 18/11/2026",
        "posthog-js 1.160.0 and 3.6.0",
        "server 192.168.100.200",
        "uuid 0193f2aa-7c1e-4b2f-9d55-2f1e8c3a9b10",
        "user_8f3a2c saw 40000 events",
    ],
)
def test_no_false_positive_phones(text: str) -> None:
    assert Redactor().redact(text) == text


def test_redact_ticket_covers_every_text_field_and_copies() -> None:
    ticket = Ticket(
        id=7,
        subject="key phc_Zx81kLmQ2rT5vW9yB3nC6dF0gH4jK7pS1aE8uI2oL3",
        description="mail me: a@b.io",
        requester=Person(name="A", email="a@b.io"),
        organization=Organization(name="Org", details="token ghp_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ12"),
        comments=[Comment(body="call +44 20 7946 0958"), Comment(body="AKIAIOSFODNN7EXAMPLE")],
        custom_fields={"notes": "Bearer zzzzzzzzzzzz", "count": 3},
    )
    clean = Redactor().redact_ticket(ticket)
    dumped = clean.model_dump_json()
    for secret in ("phc_Zx81", "a@b.io", "7946", "ghp_", "AKIA", "zzzzzzzzzzzz"):
        assert secret not in dumped, secret
    assert clean.requester.email == "[redacted:requester_email]" and clean.custom_fields["count"] == 3
    assert ticket.requester.email == "a@b.io"  # the original is untouched
    kept = Redactor(emails=False).redact_ticket(ticket)
    assert kept.requester.email == "a@b.io" and kept.description == "mail me: a@b.io"


def test_secret_filter_masks_messages_args_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretFilter())
    log = logging.getLogger("test_redaction.filter")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("calling with %s", SECRETS["slack_bot"])
        try:
            raise RuntimeError(f"auth failed for {SECRETS['github_token']}")
        except RuntimeError:
            log.exception("boom for jane@acme.io")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert "xoxb-" not in out and "ghp_" not in out
    assert "[redacted:slack_token]" in out and "[redacted:github_token]" in out
    assert "RuntimeError" in out and "jane@acme.io" in out  # the log filter masks secrets, not emails


def test_redact_secrets_leaves_ordinary_text() -> None:
    text = "Our flag `new-checkout-flow` is false for distinct_id user_8f3a2c since 1.160.0."
    assert redact_secrets(text) == text


# ---------------------------------------------------------------- property: a secret never survives

ALNUM = string.ascii_letters + string.digits
NOISE = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=60)
SEPARATORS = st.sampled_from([" ", "\n", ": ", " (", "=", ", ", "\t", "'", '"'])


def _token(prefix: str, size: int, alphabet: str = ALNUM) -> st.SearchStrategy[str]:
    return st.text(alphabet=alphabet, min_size=size, max_size=size + 20).map(lambda s: prefix + s)


def _card() -> st.SearchStrategy[str]:
    def make(body: str) -> str:
        for check in "0123456789":
            if luhn_ok(body + check):
                digits = body + check
                return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
        raise AssertionError

    return st.text(alphabet=string.digits, min_size=15, max_size=15).map(lambda s: make("4" + s[1:]))


SECRET = st.one_of(
    _token("phc_", 30),
    _token("phx_", 30),
    _token("ghp_", 36),
    _token("gho_", 36),
    _token("github_pat_", 40, ALNUM + "_"),
    _token("xoxb-", 30, ALNUM + "-"),
    _token("xapp-", 30, ALNUM + "-"),
    _token("sk-ant-", 40, ALNUM + "-_"),
    _token("AKIA", 16, string.ascii_uppercase + string.digits),
    _card(),
)


@settings(max_examples=300, deadline=None)
@given(NOISE, SEPARATORS, SECRET, SEPARATORS, NOISE)
def test_a_secret_never_survives(before: str, sep1: str, secret: str, sep2: str, after: str) -> None:
    if secret[0].isdigit():  # a card glued to other digits is a different number
        before, after = before.rstrip(string.digits + " -"), after.lstrip(string.digits + " -")
    text = before + sep1 + secret + sep2 + after
    for redactor in (Redactor(), Redactor(emails=False, phones=False)):
        assert secret not in redactor.redact(text)


# ---------------------------------------------------------------- issue #10: the formats that got through

CORPUS = json.loads((Path(__file__).parent / "data" / "redaction_corpus.json").read_text("utf-8"))


@pytest.mark.parametrize("item", CORPUS["secrets"] + CORPUS["pii"], ids=lambda i: i["kind"])
def test_corpus_secret_is_masked(item: dict[str, Any]) -> None:
    out = Redactor().redact(item["text"])
    assert "[redacted:" in out
    for needle in item["needles"]:
        assert needle not in out and unicodedata.normalize("NFKC", needle) not in out


@pytest.mark.parametrize("line", CORPUS["benign"])
def test_corpus_benign_line_is_unchanged(line: str) -> None:
    assert Redactor().redact(line) == line


def test_url_credentials_are_masked_even_without_email_redaction() -> None:
    out = Redactor(emails=False, phones=False).redact("DATABASE_URL=postgres://app:pw123@db:5432/x")
    assert out == "DATABASE_URL=postgres://[redacted:url_credentials]@db:5432/x"


def test_pem_block_is_masked_whole_and_text_after_it_stays() -> None:
    text = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBk2\nAoGBAOx9\n-----END EC PRIVATE KEY-----\nThanks!"
    assert Redactor().redact(text) == "[redacted:private_key]\nThanks!"


def test_iban_checksum_decides() -> None:
    assert Redactor().redact("DE89 3704 0044 0532 0130 00") == "[redacted:iban]"
    assert Redactor().redact("DE88 3704 0044 0532 0130 00") == "DE88 3704 0044 0532 0130 00"


_FULLWIDTH = {ord(c): ord(c) + 0xFEE0 for c in string.ascii_letters + string.digits + "_-"}


def _disguise(secret: str, how: str, cut: int) -> str:
    if how == "zero_width":
        cut = 1 + cut % (len(secret) - 1)
        return secret[:cut] + "\u200b" + secret[cut:]
    if how == "full_width":
        return secret.translate(_FULLWIDTH)
    if how == "soft_hyphen":
        cut = 1 + cut % (len(secret) - 1)
        return secret[:cut] + "\u00ad" + secret[cut:]
    return secret.replace(" ", "\u00a0")


@settings(max_examples=200, deadline=None)
@given(SECRET, st.sampled_from(["zero_width", "full_width", "soft_hyphen", "nbsp"]), st.integers(0, 200))
def test_a_disguised_secret_never_survives(secret: str, how: str, cut: int) -> None:
    text = f"here: {_disguise(secret, how, cut)} thanks"
    out = Redactor().redact(text)
    assert "[redacted:" in out
    assert secret not in out and secret not in unicodedata.normalize("NFKC", out)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_redaction_is_total_and_idempotent(text: str) -> None:
    once = Redactor().redact(text)
    assert Redactor().redact(once) == once


def test_requester_email_becomes_a_token_that_only_reveal_resolves() -> None:
    ticket = Ticket(
        id=1,
        subject="login broken",
        description="I am jane@acme.io, my colleague bob@acme.io sees it too",
        requester=Person(name="Jane", email="Jane@Acme.io"),
    )
    redactor = Redactor()
    clean = redactor.redact_ticket(ticket)
    assert "acme.io" not in clean.model_dump_json() and clean.requester_lookup == "jane@acme.io"
    assert clean.description == f"I am {REQUESTER_EMAIL}, my colleague [redacted:email] sees it too"
    assert redactor.redact_ticket(clean) is clean  # one pass only
    assert redactor.lookup_emails(clean, []) == [REQUESTER_EMAIL]  # bob is never looked up
    assert reveal({"email": REQUESTER_EMAIL}) == {"email": REQUESTER_EMAIL}  # outside an adapter call
    with lookup_scope(clean.requester_lookup):
        assert reveal({"email": REQUESTER_EMAIL, "limit": 5}) == {"email": "jane@acme.io", "limit": 5}
    # not named in the text: intake hands no email to research
    quiet = redactor.redact_ticket(ticket.model_copy(update={"description": "login broken"}))
    assert redactor.lookup_emails(quiet, []) == []
    # emails not redacted: the extracted list stays as intake found it
    assert Redactor(emails=False).lookup_emails(clean, ["bob@acme.io"]) == ["bob@acme.io"]


def test_every_ticket_field_is_covered() -> None:
    token = "ghp_a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ12"
    ticket = Ticket(
        id=2,
        subject=token,
        tags=[f"t-{token}"],
        requester=Person(name=f"Jane {token}", email="jane@acme.io"),
        organization=Organization(name=f"Acme {token}", tags=[token], details=token),
        comments=[Comment(body=token, author_name=token, attachments=[f"{token}.har"])],
        custom_fields={"notes": {"nested": [token]}, token: 1},
    )
    assert "ghp_" not in Redactor().redact_ticket(ticket).model_dump_json()


def test_storable_report_drops_person_properties() -> None:
    row = Evidence(
        source="posthog_mcp",
        status=EvidenceStatus.ok,
        title="Person by email: [redacted:requester_email]",
        summary="Person x: 1 distinct id(s); plan=scale, city=Berlin",
        data={"distinct_ids": ["d1"], "properties": {"plan": "scale"}, "properties_last_updated_at": {}},
    )
    report = TriageReport(ticket=TicketSummary(id=1), evidence=[row])
    stored = storable(report).evidence[0]
    assert "Berlin" not in stored.model_dump_json() and "properties" not in stored.data
    assert stored.data["distinct_ids"] == ["d1"]
