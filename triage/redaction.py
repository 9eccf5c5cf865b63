"""Redaction: mask secrets and personal data before ticket text reaches a model, a log or Slack.

Secrets are always masked: PostHog keys (`phc_`, `phx_`, `phs_`), GitHub tokens (`ghp_`, `gho_`, `ghs_`,
`ghu_`, `ghr_`, `github_pat_`), Slack tokens (`xoxb-`, `xoxp-`, `xapp-`, `xoxe…`), Anthropic keys
(`sk-ant-`), AWS access key ids (`AKIA…`/`ASIA…`), JWTs, `Bearer <token>`, `Authorization:` headers,
`password=`/`api_key:`-style assignments, and card numbers (13–19 digits, Luhn-checked).
Email addresses and phone numbers are masked when the matching flag is on (settings
`REDACT_EMAILS`, `REDACT_PHONES`). Every mask reads `[redacted:<kind>]`.

Decision (identifiers vs redaction): intake extracts identifiers from the *redacted* ticket, except
email addresses, which are read from the original ticket because they are needed for person lookups
(`rule_intake(..., unredacted=original)`). So a secret never becomes an identifier, and the emails in
`Intake.identifiers` are the only personal data that survives - treat them as PII when rendering.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from triage.models import Comment, Organization, Person, Ticket

Replacer = Callable[[re.Match[str]], str]


def mask(kind: str) -> str:
    return f"[redacted:{kind}]"


@dataclass(frozen=True)
class _Rule:
    kind: str
    pattern: re.Pattern[str]
    group: str | None = None  # mask only this named group (keeps e.g. the header name readable)
    needles: tuple[str, ...] = ()  # cheap pre-check on the lowercased text: skip the regex without them

    def apply(self, text: str, low: str) -> str:
        if self.needles and not any(n in low for n in self.needles):
            return text
        return self.pattern.sub(self._replace, text)

    def _replace(self, match: re.Match[str]) -> str:
        if self.group is None:
            return mask(self.kind)
        start, end = match.span(self.group)
        if start < 0:
            return match.group(0)
        base = match.start(0)
        whole = match.group(0)
        return whole[: start - base] + mask(self.kind) + whole[end - base :]


# Prefixed tokens are matched without a leading word boundary: a token glued to other text is still a
# token. Every quantifier is bounded or on a character class that cannot overlap its neighbour, so
# nothing here backtracks catastrophically on huge input.
SECRET_RULES: tuple[_Rule, ...] = (
    _Rule("anthropic_key", re.compile(r"sk-ant-[A-Za-z0-9_-]{16,}")),
    _Rule("github_token", re.compile(r"github_pat_[A-Za-z0-9_]{20,}|gh[pousr]_[A-Za-z0-9]{20,}")),
    _Rule(
        "slack_token", re.compile(r"xox[abeoprs](?:\.xox[abeoprs])?-[A-Za-z0-9-]{8,}|xapp-[A-Za-z0-9-]{8,}")
    ),
    _Rule("posthog_key", re.compile(r"ph[cxs]_[A-Za-z0-9]{16,}")),
    _Rule("aws_key", re.compile(r"(?:AKIA|ASIA)[A-Z0-9]{16}")),
    _Rule("jwt", re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")),
    _Rule("api_key", re.compile(r"(?<![A-Za-z0-9])sk-(?:proj-)?[A-Za-z0-9_-]{20,}")),
    _Rule(
        "authorization",
        re.compile(
            r"(?i)\b(?:proxy-)?authorization\s*[:=]\s*[\"']?(?P<secret>[^\s\"',;]+(?:[ \t]+[^\s\"',;]+)?)"
        ),
        group="secret",
        needles=("authorization",),
    ),
    _Rule(
        "bearer_token",
        re.compile(r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/=-]{8,})"),
        group="secret",
        needles=("bearer",),
    ),
    _Rule(
        "secret",
        re.compile(
            r"(?i)\b(?:password|passwd|pwd|secret|client_secret|api[_-]?key|access[_-]?token|auth[_-]?token"
            r"|secret[_-]?key|private[_-]?key|aws_secret_access_key)[\"']?\s*[:=]\s*[\"']?"
            r"(?P<secret>[^\s\"',;]{6,})"
        ),
        group="secret",
        needles=("pass", "pwd", "secret", "key", "token"),
    ),
)

_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}")
# +country code or a (area) code or a plain grouped number; validated in code (digit count, not a date/IP)
_PHONE = re.compile(
    r"(?<![\w.+-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){1,4}(?![.-]?\d)(?!\w)"
)
_DATE_LIKE = re.compile(r"^\d{4}[-./]\d{1,2}[-./]\d{1,2}$|^\d{1,2}[-./]\d{1,2}[-./]\d{2,4}$")
_IP_LIKE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


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


def _card(match: re.Match[str]) -> str:
    raw = match.group(0)
    digits = raw.replace(" ", "").replace("-", "")
    if not 13 <= len(digits) <= 19 or not luhn_ok(digits):
        return raw
    # a bare run of digits is only a card when it starts like one (3x Amex/Diners, 4 Visa, 5 MC, 6 Discover)
    if digits == raw and digits[0] not in "3456":
        return raw
    return mask("card")


def _phone(match: re.Match[str]) -> str:
    raw = match.group(0)
    digits = sum(ch.isdigit() for ch in raw)
    if _DATE_LIKE.match(raw) or _IP_LIKE.match(raw):
        return raw
    if raw.startswith("+"):
        return mask("phone") if 8 <= digits <= 15 else raw
    if "(" in raw or 10 <= digits <= 15:
        return mask("phone") if 7 <= digits <= 15 else raw
    return raw


def redact_secrets(text: str) -> str:
    """Mask secrets and card numbers only (what the log filter applies)."""
    if not text:
        return text
    low = text.lower()
    for rule in SECRET_RULES:
        text = rule.apply(text, low)
    return _CARD.sub(_card, text)


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

    def redact_ticket(self, ticket: Ticket) -> Ticket:
        """A copy of the ticket with subject, description, comments and requester email redacted."""
        requester: Person = ticket.requester.model_copy(
            update={
                "email": mask("email") if self.emails and ticket.requester.email else ticket.requester.email
            }
        )
        organization: Organization | None = None
        if ticket.organization is not None:
            organization = ticket.organization.model_copy(
                update={"details": self.redact(ticket.organization.details)}
            )
        comments: list[Comment] = [
            c.model_copy(update={"body": self.redact(c.body)}) for c in ticket.comments
        ]
        custom = {k: self.redact(v) if isinstance(v, str) else v for k, v in ticket.custom_fields.items()}
        return ticket.model_copy(
            update={
                "subject": self.redact(ticket.subject),
                "description": self.redact(ticket.description),
                "comments": comments,
                "requester": requester,
                "organization": organization,
                "custom_fields": custom,
            }
        )


class SecretFilter(logging.Filter):
    """A logging filter that masks secrets (not emails/phones) in messages, arguments and tracebacks.

    Attach it to handlers (`handler.addFilter(SecretFilter())`) so records from every logger pass it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the record
            message = str(record.msg)
        record.msg = redact_secrets(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_secrets(record.exc_text)
        if record.stack_info:
            record.stack_info = redact_secrets(record.stack_info)
        return True
