"""Redaction: one pass that masks secrets and personal data before anything else sees a ticket.

`Redactor.redact_ticket` is the single pass. It covers subject, description, comments (bodies, author
names, attachment names), requester and organization names, tags and custom fields. Text is
normalised first (NFKC, zero-width and other invisible characters removed), so full-width `ｐｈｃ_`,
full-width digits, no-break spaces and tokens split by a zero-width space are matched like plain ones.

Always masked: URL credentials (`scheme://user:pass@host`), PEM private keys (the whole block) and
the JSON `"private_key"` value, PostHog, GitHub, Slack, Anthropic, OpenAI-style `sk-`, Stripe
(`sk_live_`, `rk_live_`, `whsec_`), Google (`AIza…`, `GOCSPX-…`), npm, SendGrid and Twilio keys,
Slack webhook URLs, AWS access key ids and bare secret keys (40 high-entropy characters), JWTs,
`Bearer`/`Authorization:` values, `password=`-style assignments, card numbers (Luhn-checked; spaces,
dashes, dots or no-break spaces between the digits) and IBANs (mod-97-checked). Email addresses and
phone numbers are masked when the matching flag is on (`REDACT_EMAILS`, `REDACT_PHONES`). Every mask
reads `[redacted:<kind>]`.

The requester's email: with `REDACT_EMAILS` on, the only email that may be looked up is the
requester's, and only inside the adapter call. Where the ticket text names it, it becomes the token
`REQUESTER_EMAIL` (other addresses become `[redacted:email]`); the redacted ticket carries the raw
address in a private attribute (never serialised); intake (`Identifiers.emails`,
`Intake.requester_email`) holds the token, and the engine opens `lookup_scope` around research so an
adapter resolves the token with `reveal` at the moment it calls its API. Prompts, Slack, evidence
titles and the store only ever see the token.

Decision (detect-secrets 1.5, evaluated next to these patterns with `bench/redaction_coverage.py` on
`tests/data/redaction_corpus.json`): with all plugins it caught 21 of 28 labelled secrets and flagged
12 of 12 benign ticket lines (its entropy and keyword plugins fire on ordinary words and ids); with its
vendor plugins only it caught 8 of 28. It caught nothing our patterns miss, and it only reports (no
masking, no Unicode normalisation), so it is not used at run time.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from triage.models import Comment, Evidence, Organization, Ticket, TriageReport

Replacer = Callable[[re.Match[str]], str]

REQUESTER_EMAIL = "[redacted:requester_email]"

# zero-width and other invisible format characters that split a token without showing
_INVISIBLE = dict.fromkeys(
    map(ord, "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"), None
)


def mask(kind: str) -> str:
    return f"[redacted:{kind}]"


# the same characters written as JSON/Python escapes (a pasted config, a logged repr)
_ESCAPED_INVISIBLE = re.compile(r"\\u(?:00ad|180e|200[b-f]|206[0-4]|feff)", re.IGNORECASE)


def normalize(text: str) -> str:
    """NFKC (full-width → ASCII, NBSP → space) with invisible characters (and their escapes) removed."""
    if "\\u" in text:
        text = _ESCAPED_INVISIBLE.sub("", text)
    if text.isascii():
        return text
    return unicodedata.normalize("NFKC", text.translate(_INVISIBLE)).translate(_INVISIBLE)


@dataclass(frozen=True)
class _Rule:
    kind: str
    pattern: re.Pattern[str]
    group: str | None = None  # mask only this named group (keeps e.g. the header name readable)
    needles: tuple[str, ...] = ()  # cheap pre-check on the lowercased text: skip the regex without them
    check: Callable[[str], bool] | None = None  # a validator for the masked part (Luhn, entropy)
    replace: Replacer | None = None  # a replacement of its own (IBAN: the longest valid prefix)

    def apply(self, text: str, low: str) -> str:
        if self.needles and not any(n in low for n in self.needles):
            return text
        return self.pattern.sub(self.replace or self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        name = self.group or 0
        start, end = match.span(name)
        if start < 0 or (self.check is not None and not self.check(match.group(name))):
            return match.group(0)
        base = match.start(0)
        whole = match.group(0)
        return whole[: start - base] + mask(self.kind) + whole[end - base :]


def luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _card_ok(raw: str) -> bool:
    digits = "".join(ch for ch in raw if ch.isdigit())
    if not 13 <= len(digits) <= 19 or not luhn_ok(digits):
        return False
    # a bare run of digits is only a card when it starts like one (3x Amex/Diners, 4 Visa, 5 MC, 6 Discover)
    return digits != raw or digits[0] in "3456"


def iban_ok(raw: str) -> bool:
    compact = raw.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


def _iban(match: re.Match[str]) -> str:
    """Mask the longest mod-97-valid prefix (a grouped IBAN may be followed by an uppercase word)."""
    raw = match.group(0)
    parts = raw.split(" ")
    for n in range(len(parts), 0, -1):
        head = " ".join(parts[:n])
        if iban_ok(head):
            return mask("iban") + raw[len(head) :]
    return raw


def _entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def _aws_secret_ok(raw: str) -> bool:
    """40 base64 characters that look random: mixed case and digits, few slashes, high entropy."""
    return (
        any(c.islower() for c in raw)
        and any(c.isupper() for c in raw)
        and any(c.isdigit() for c in raw)
        and raw.count("/") <= 3
        and _entropy(raw) >= 4.2
    )


# Prefixed tokens are matched without a leading word boundary: a token glued to other text is still a
# token. Every quantifier is bounded or on a character class that cannot overlap its neighbour, so
# nothing here backtracks catastrophically on huge input. Order matters: whole blocks and URLs first.
SECRET_RULES: tuple[_Rule, ...] = (
    _Rule(
        "private_key",
        re.compile(
            r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----(?:[A-Za-z0-9+/=\s:,-]|\\[nr]){0,20000}?"
            r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|(?=[^A-Za-z0-9+/=\s:,\\-]|$))"
        ),
        needles=("private key",),
    ),
    _Rule(
        "private_key",
        re.compile(r"(?i)[\"']private_key(?:_id)?[\"']\s*:\s*[\"'](?P<secret>[^\"']{1,20000})[\"']"),
        group="secret",
        needles=("private_key",),
    ),
    _Rule(
        "slack_webhook",
        re.compile(r"https?://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9/_-]{8,300}"),
        needles=("hooks.slack.com",),
    ),
    _Rule(
        "url_credentials",
        re.compile(r"(?i)\b[a-z][a-z0-9+.-]{0,30}://(?P<secret>[^\s/?#\[\]<>\"']{1,256})@"),
        group="secret",
        needles=("://",),
    ),
    _Rule("anthropic_key", re.compile(r"sk-ant-[A-Za-z0-9_-]{16,}")),
    _Rule("stripe_key", re.compile(r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|whsec_[A-Za-z0-9+/=]{10,}")),
    _Rule("google_key", re.compile(r"AIza[0-9A-Za-z_-]{35}|GOCSPX-[A-Za-z0-9_-]{20,}")),
    _Rule("github_token", re.compile(r"github_pat_[A-Za-z0-9_]{20,}|gh[pousr]_[A-Za-z0-9]{20,}")),
    _Rule(
        "slack_token", re.compile(r"xox[abeoprs](?:\.xox[abeoprs])?-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,}")
    ),
    _Rule("posthog_key", re.compile(r"ph[cxs]_[A-Za-z0-9]{16,}")),
    _Rule("npm_token", re.compile(r"npm_[A-Za-z0-9]{36}")),
    _Rule("sendgrid_key", re.compile(r"SG\.[A-Za-z0-9_-]{16,32}\.[A-Za-z0-9_-]{16,64}")),
    _Rule("twilio_key", re.compile(r"(?<![A-Za-z0-9])(?:SK|AC)[0-9a-fA-F]{32}(?![A-Za-z0-9])")),
    _Rule("aws_key", re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}")),
    _Rule(
        "aws_secret",
        re.compile(r"(?<![A-Za-z0-9/+=_-])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=_-])"),
        check=_aws_secret_ok,
    ),
    _Rule("jwt", re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    _Rule("api_key", re.compile(r"(?<![A-Za-z0-9])sk-(?:proj-)?[A-Za-z0-9_-]{20,}")),
    _Rule(
        "authorization",
        re.compile(
            r"(?i)\b(?:proxy-)?authorization\s*[:=]\s*[\"']?(?P<secret>(?!\[redacted:)[^\s\"',;]+(?:[ \t]+[^\s\"',;]+)?)"
        ),
        group="secret",
        needles=("authorization",),
    ),
    _Rule(
        "bearer_token",
        re.compile(r"(?i)\bbearer\s+(?P<secret>(?!\[redacted:)[A-Za-z0-9._~+/=-]{8,})"),
        group="secret",
        needles=("bearer",),
    ),
    _Rule(
        "secret",
        re.compile(
            r"(?i)\b(?:password|passwd|pwd|secret|client_secret|api[_-]?key|access[_-]?token|auth[_-]?token"
            r"|secret[_-]?key|private[_-]?key|aws_secret_access_key)[\"']?\s*[:=]\s*[\"']?"
            r"(?P<secret>(?!\[redacted:)[^\s\"',;]{6,})"
        ),
        group="secret",
        needles=("pass", "pwd", "secret", "key", "token"),
    ),
    _Rule("card", re.compile(r"(?<![\d.-])\d(?:[ .-]?\d){12,18}(?![\d])"), check=_card_ok),
    _Rule("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{1,4}){2,8}\b"), replace=_iban),
)

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}")
# +country code or a (area) code or a plain grouped number; validated in code (digit count, not a date/IP)
_PHONE = re.compile(
    r"(?<![\w.+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![.-]?\d)(?!\w)"
)
_DATE_LIKE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}(?:$|[ T])|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}(?:$| )")
_IP_LIKE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


def _phone(match: re.Match[str]) -> str:
    raw = match.group(0)
    digits = sum(ch.isdigit() for ch in raw)
    if _DATE_LIKE.match(raw) or _IP_LIKE.match(raw) or match.string.startswith(":", match.end()):
        return raw  # a date, a date followed by a time, an IP address, or the hour of a time
    if raw.startswith("+"):
        return mask("phone") if 8 <= digits <= 15 else raw
    if "(" in raw or 10 <= digits <= 15:
        return mask("phone") if 7 <= digits <= 15 else raw
    return raw


def redact_secrets(text: str) -> str:
    """Mask secrets and card numbers only (what the log filter applies)."""
    if not text:
        return text
    text = normalize(text)
    low = text.lower()
    for rule in SECRET_RULES:
        text = rule.apply(text, low)
    return text


# ---------------------------------------------------------------- the requester's email for look-ups

_REQUESTER: ContextVar[str] = ContextVar("requester_email", default="")


@contextmanager
def lookup_scope(email: str) -> Iterator[None]:
    """Research inside this block may resolve `REQUESTER_EMAIL` to the raw address (see `reveal`)."""
    token = _REQUESTER.set(email)
    try:
        yield
    finally:
        _REQUESTER.reset(token)


def reveal(value: Any) -> Any:
    """Inside an adapter call only: the requester's raw email for the token, anything else unchanged."""
    if value == REQUESTER_EMAIL:
        return _REQUESTER.get() or value
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


class Redactor:
    """Masks secrets always; emails and phone numbers per flag."""

    def __init__(self, emails: bool = True, phones: bool = True) -> None:
        self.emails = emails
        self.phones = phones

    def redact(self, text: str) -> str:
        if not text:
            return text
        text = redact_secrets(text)
        if self.emails and "@" in text:
            text = _EMAIL.sub(mask("email"), text)
        if self.phones:
            text = _PHONE.sub(_phone, text)
        return text

    def redact_value(self, value: Any, redact: Callable[[str], str] | None = None) -> Any:
        """Every string inside a JSON-like value (keys included), numbers and flags unchanged."""
        r = redact or self.redact
        if isinstance(value, str):
            return r(value)
        if isinstance(value, dict):
            return {self.redact_value(k, r): self.redact_value(v, r) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.redact_value(v, r) for v in value]
        return value

    def redact_ticket(self, ticket: Ticket) -> Ticket:
        """The one pass: a redacted copy of every field (idempotent; the original is untouched)."""
        if ticket.redacted:
            return ticket
        raw_email = ticket.requester.email.strip().lower()
        own = re.compile(re.escape(raw_email), re.IGNORECASE) if self.emails and "@" in raw_email else None

        def r(text: str) -> str:
            if own is not None and text:
                text = own.sub(REQUESTER_EMAIL, normalize(text))
            return self.redact(text)

        organization: Organization | None = None
        if ticket.organization is not None:
            org = ticket.organization
            organization = org.model_copy(
                update={"name": r(org.name), "details": r(org.details), "tags": [r(t) for t in org.tags]}
            )
        comments: list[Comment] = [
            c.model_copy(
                update={
                    "body": r(c.body),
                    "author_name": r(c.author_name),
                    "attachments": [r(a) for a in c.attachments],
                }
            )
            for c in ticket.comments
        ]
        requester = ticket.requester.model_copy(
            update={
                "name": r(ticket.requester.name),
                "email": REQUESTER_EMAIL
                if self.emails and ticket.requester.email
                else ticket.requester.email,
            }
        )
        clean = ticket.model_copy(
            update={
                "subject": r(ticket.subject),
                "description": r(ticket.description),
                "tags": [r(t) for t in ticket.tags],
                "comments": comments,
                "requester": requester,
                "organization": organization,
                "custom_fields": self.redact_value(ticket.custom_fields, r),
            }
        )
        clean.mark_redacted(raw_email)
        return clean

    def lookup_emails(self, ticket: Ticket, extracted: list[str]) -> list[str]:
        """The emails intake may hand to research: with emails redacted, only the requester's token,
        and only when the ticket text names it (as it named the address before redaction)."""
        if not self.emails:
            return extracted
        texts = [ticket.subject, ticket.description, *(c.body for c in ticket.comments)]
        return [REQUESTER_EMAIL] if any(REQUESTER_EMAIL in t for t in texts) else []

    def redact_evidence(self, row: Evidence) -> Evidence:
        return row.model_copy(
            update={
                "title": self.redact(row.title),
                "summary": self.redact(row.summary),
                "excerpt": self.redact(row.excerpt),
                "query": self.redact(row.query),
                "subject": self.redact(row.subject),
                "data": self.redact_value(row.data),
            }
        )

    def redact_report(self, report: TriageReport) -> TriageReport:
        """Every string of a report (model-written text included) through the same pass."""
        return TriageReport.model_validate(self.redact_value(report.model_dump(mode="json")))


PERSON_DATA_KEYS = ("properties", "properties_last_updated_at")


def _storable_row(row: Evidence) -> Evidence:
    if not any(key in row.data for key in PERSON_DATA_KEYS):
        return row
    data = {k: v for k, v in row.data.items() if k not in PERSON_DATA_KEYS}
    ids = len(data.get("distinct_ids") or [])
    return row.model_copy(
        update={"data": data, "summary": f"Person found: {ids} distinct id(s) (properties are not stored)"}
    )


def storable(report: TriageReport) -> TriageReport:
    """What the store keeps of a (redacted) report: person properties dropped from data and summary."""
    return report.model_copy(update={"evidence": [_storable_row(e) for e in report.evidence]})


class SecretFilter(logging.Filter):
    """A logging filter that masks secrets in messages, arguments and tracebacks; emails and phones too
    when given a `Redactor` (the service passes one built from REDACT_EMAILS/REDACT_PHONES).

    Attach it to handlers (`handler.addFilter(SecretFilter())`) so records from every logger pass it.
    """

    def __init__(self, redactor: Redactor | None = None) -> None:
        super().__init__()
        self.mask: Callable[[str], str] = redactor.redact if redactor is not None else redact_secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        record.msg = self.mask(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True
