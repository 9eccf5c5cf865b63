"""Public code symbols in a ticket: the best GitHub search words (`Identifiers.code_symbols`).

SDK API names (`posthog.displaySurvey()` → `displaySurvey`, `posthog.onFeatureFlags` without a call,
`useFeatureFlagEnabled`), other camelCase and dotted calls, identifiers in backticks, names mixing
snake_case and camelCase (`ph_swizzled_layoutSublayers`), the profile's config option names
(`person_profiles`) and error class names (`PostHogFetchHttpError`). Never a customer identifier: anything
that is a flag key, event name, distinct id or other extracted value of this ticket is left out, and URLs
and email addresses are blanked before scanning. Language built-ins (`TypeError`, `JSON.parse`,
`useEffect`: the profile's `generic_symbols`) find no bug and are left out too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from triage.intake.flags_events import API_NAME
from triage.intake.scan import Bag
from triage.playbooks import Vocabulary

_BLANK = re.compile(r"https?://\S{1,500}|[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,8}")
_DOTTED_CALL = re.compile(r"\b((?:[A-Za-z_$][\w$]{0,40}\.){1,3})([A-Za-z_$][\w$]{1,60})\s*\(")
_CAMEL_WORD = re.compile(r"(?<![\w$.-])([a-z][a-z0-9]{1,30}(?:[A-Z][a-z0-9]*){1,8})(?![\w-])")
_CLASS_NAME = re.compile(
    r"\b([A-Z][A-Za-z0-9]{1,60}(?:Error|Exception|Provider)|\w*Post[Hh]og[A-Z]\w{1,40})\b"
)
_BACKTICK = re.compile(r"`([A-Za-z_$][\w$]{1,60}(?:\.[A-Za-z_$][\w$]{1,60}){0,3})(?:\(\))?`")
_SNAKE_WORD = re.compile(r"(?<![\w$.-])([a-z][a-z0-9]{0,30}(?:_[a-z0-9]{1,30}){1,6})(?![\w-])")
_GENERIC_CALLS = frozenset({"if", "for", "while", "function", "return", "console.log", "require", "import"})
# `posthog.onFeatureFlags` / `posthog.getActiveMatchingSurveys is not a function`: a member of the SDK object
_SDK_MEMBER = re.compile(r"\b(?:window\.)?post[Hh]og\.([A-Za-z_$][\w$]{2,60})\b(?![.(\w])")
_SNAKE_CAMEL = re.compile(
    r"(?<![\w$.-])(_?[a-z][a-z0-9]{0,30}(?:_[a-z0-9]{1,30})*_[a-z0-9]*[A-Z]\w{0,40})(?![\w-])"
)


def _is_snake(token: str) -> bool:
    return "_" in token and token.lower() == token


def extract_symbols(text: str, private: Iterable[str], vocabulary: Vocabulary, limit: int = 10) -> list[str]:
    """Code symbols in text order, at most `limit`, none equal to a private value of the ticket."""
    text = _BLANK.sub(lambda m: " " * len(m.group(0)), text)
    blocked = {p.lower() for p in private if p} | {w.lower() for w in vocabulary.not_identifiers}
    blocked |= {w.lower() for w in vocabulary.generic_symbols}
    options = {o.lower(): o for o in vocabulary.config_options}
    found: list[tuple[int, str]] = []

    for m in _DOTTED_CALL.finditer(text):
        owner, name = m.group(1).rstrip("."), m.group(2)
        if any(c.isupper() for c in name[1:]) or "_" in name:
            found.append((m.start(2), name))
        elif len(name) >= 3 and not owner.isdigit():
            found.append((m.start(), f"{owner.split('.')[-1]}.{name}"))
    for m in _SDK_MEMBER.finditer(text):
        if any(c.isupper() for c in m.group(1)[1:]) or "_" in m.group(1):
            found.append((m.start(1), m.group(1)))
    for m in _SNAKE_CAMEL.finditer(text):
        found.append((m.start(), m.group(1)))
    for m in _CAMEL_WORD.finditer(text):
        token = m.group(1)
        if len(token) >= 6 or API_NAME.match(token):
            found.append((m.start(), token))
    for m in _CLASS_NAME.finditer(text):
        found.append((m.start(), m.group(1)))
    for m in _BACKTICK.finditer(text):
        token = m.group(1)
        if _is_snake(token) and token.lower() not in options:
            continue  # an unknown snake_case name may be the customer's event or flag: not public
        found.append((m.start(), token))
    if options:
        for m in _SNAKE_WORD.finditer(text):
            if m.group(1).lower() in options:
                found.append((m.start(), options[m.group(1).lower()]))

    bag = Bag(limit=limit, max_len=80)
    for _, token in sorted(found, key=lambda item: item[0]):
        low = token.lower()
        if low in blocked or low in _GENERIC_CALLS or any(ch.isdigit() for ch in token):
            continue
        if low.split(".")[-1] in blocked:
            continue
        bag.add(token)
    return bag.items
