"""Identifier extraction: every id, name and message in a ticket that a research step can look up."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from urllib.parse import unquote, urlsplit

from triage.intake.errors import MAX_MESSAGE, extract_errors
from triage.intake.flags_events import extract_flags_and_events
from triage.intake.scan import (
    HEURISTIC_CHARS,
    TRAILING,
    Bag,
    anchors,
    ascii_lower,
    bounded,
    clean_token,
    find_all,
    matches_near,
    word_list,
)
from triage.intake.sdks import extract_sdks
from triage.intake.symbols import extract_symbols
from triage.models import Identifiers
from triage.playbooks import SdkSpec, Vocabulary, bundled_vocabulary

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # on the lowered text
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}")
_URL = re.compile(
    r"https?://[^\s<>\"'`)\]}|]{1,500}"
)  # on the lowered text (positions), values from the original
_BARE_POSTHOG_HOST = re.compile(r"((?:[a-z0-9-]{1,63}\.){1,4}posthog\.com)\b")

_DISTINCT = re.compile(
    r"distinct[_ -]?ids?\b[\"'`]?[ \t]*(?:[:=]|\bis\b|\bwas\b|\bes\b|\bist\b|\best\b|\bé\b)?[ \t]*"
    r"[\"'`(]?([A-Za-z0-9$][\w$@.:+/|-]{1,99})",
    re.IGNORECASE,
)
_DISTINCT_CAMEL = re.compile(r"distinctId[\"'`]?\s*[:=]\s*[\"'`]([^\"'`\s]{1,100})[\"'`]", re.IGNORECASE)
_IDENTIFY_CALL = re.compile(r"(?:identify|alias)\s*\(\s*[\"'`]([^\"'`\s]{1,100})[\"'`]", re.IGNORECASE)
_PERSON_URL = re.compile(r"/persons?/([^/?#\s\"'<>)\]]{1,200})", re.IGNORECASE)
_LIST_CONT = re.compile(
    r"[ \t]*(?:,|/|\band\b|\by\b|\bund\b|\bet\b|\be\b)[ \t]*[\"'`]?([A-Za-z0-9$][\w$@.:+|-]{1,99})"
)

_SURVEY_WORDS = word_list(
    "survey|encuesta|umfrage|enquête|enquete|sondage|pesquisa|questionário|questionario"
)
_PERSON_WORDS = ("person", "persona", "pessoa")
_ERROR_ID_WORDS = ("error tracking", "error_tracking", "exception", "issue id", "issue_id", "fingerprint")
_FINGERPRINT = re.compile(
    r"fingerprint\b[\"'`]?[ \t]*(?:[:=]|\bis\b)?[ \t]*[\"'`]?([\w:.-]{6,128})", re.IGNORECASE
)
_ERROR_TRACKING_URL = re.compile(r"/error_tracking/([0-9A-Fa-f-]{36}|[\w-]{6,64})", re.IGNORECASE)

_VERSION = re.compile(
    r"(?<![\w.@/-])v?(\d{1,4}\.\d{1,4}\.\d{1,5}(?:-[0-9A-Za-z]{1,20}(?:\.[0-9A-Za-z]{1,20}){0,3})?)(?![\w]|\.\d)"
)
MONTHS = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_DATES = (
    re.compile(
        r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2})?)?(?![\w-])"
    ),
    re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b"),
    re.compile(
        rf"\b\d{{1,2}}(?:st|nd|rd|th)?[ \t]+(?:of[ \t]+)?{MONTHS}\.?(?:[ \t]+\d{{4}})?\b", re.IGNORECASE
    ),
    re.compile(rf"\b{MONTHS}\.?[ \t]+\d{{1,2}}(?:st|nd|rd|th)?(?:,?[ \t]+\d{{4}})?\b", re.IGNORECASE),
    re.compile(r"\b\d{1,2}:\d{2}[ \t]*(?:UTC|GMT|CET|CEST|PST|PDT|EST|EDT|BST|IST)\b"),
    re.compile(
        r"\b(?:(?:on|last|since|this)[ \t]+(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday))\b"
        r"|\b(?:yesterday|last night|this morning|ayer|gestern|hier|ontem)\b",
        re.IGNORECASE,
    ),
)

_NOT_IDS = frozenset(
    word_list(
        "the|a|an|of|for|and|or|is|was|to|in|on|it|this|that|user|users|null|none|undefined|true|"
        "false|anonymous|here|below|above|field|property|value|values|de|del|la|el|der|die|das|le|"
        "les|do|da"
    )
)
# ---------------------------------------------------------------- identifiers


def _closest_kind(low: str, start: int, kinds: Mapping[str, Sequence[str]], back: int = 90) -> str | None:
    """Which kind of word (survey, person …) occurs closest before position `start`."""
    window = low[max(0, start - back) : start]
    best_kind, best_pos = None, -1
    for kind, words in kinds.items():
        for word in words:
            pos = window.rfind(word)
            if pos >= 0 and pos + len(word) > best_pos:
                best_kind, best_pos = kind, pos + len(word)
    return best_kind


_UUID_KINDS: dict[str, Sequence[str]] = {
    "survey": (*_SURVEY_WORDS, "/surveys/"),
    "person": (*_PERSON_WORDS, "/person/", "/persons/"),
    "error": _ERROR_ID_WORDS,
    "distinct": ("distinct",),
}


def _looks_like_id(token: str) -> bool:
    if token.lower() in _NOT_IDS or len(token) < 2:
        return False
    return any(ch.isdigit() or ch in "_@-.:|$" for ch in token) or len(token) >= 12


def extract_identifiers(
    text: str, sdk_catalogue: Sequence[SdkSpec] | None = None, vocabulary: Vocabulary | None = None
) -> Identifiers:
    """Every identifier in the text that a research step can look up, and the public code symbols.

    Never raises; bounded per type. `vocabulary` defaults to the bundled profile's.
    """
    vocabulary = vocabulary or bundled_vocabulary()
    text = bounded(text or "")
    low = ascii_lower(text)
    head = text[:HEURISTIC_CHARS]
    distinct, persons, emails = Bag(), Bag(), Bag()
    events, flags, errors = Bag(), Bag(), Bag(max_len=MAX_MESSAGE)
    fingerprints, surveys, urls, hosts = Bag(), Bag(), Bag(max_len=500), Bag()
    releases, dates = Bag(), Bag()

    # URLs first: they carry survey / person / error-tracking ids
    for m in _URL.finditer(low):
        url = text[m.start() : m.end()].rstrip(TRAILING)
        urls.add(url)
        try:
            host = urlsplit(url).hostname
        except ValueError:
            host = None
        hosts.add(host)
        if urls.full:
            break
    if "posthog.com" in low:
        for m in matches_near(
            _BARE_POSTHOG_HOST, low, find_all(low, "posthog.com", word_start=False), 260, 12
        ):
            hosts.add(m.group(1))
    for url in urls.items:
        path = url.split("?", 1)[0]
        if (pm := _PERSON_URL.search(path)) is not None:
            value = unquote(pm.group(1))
            is_uuid = _UUID.fullmatch(value.lower()) is not None
            (persons if is_uuid and "/persons/" in path.lower() else distinct).add(value)
        if (em := _ERROR_TRACKING_URL.search(path)) is not None:
            fingerprints.add(em.group(1))
        if "/surveys/" in path.lower() and (sm := _UUID.search(path.lower())) is not None:
            surveys.add(sm.group(0))

    # distinct ids
    for pos in find_all(low, "distinct"):
        m = _DISTINCT.match(text, pos)
        if m is not None:
            token = clean_token(m.group(1))
            if _looks_like_id(token):
                distinct.add(token)
                end = m.end()
                for _ in range(5):  # a list: "distinct_ids: a, b and c"
                    cont = _LIST_CONT.match(text, end)
                    if cont is None:
                        break
                    more = clean_token(cont.group(1))
                    if not _looks_like_id(more):
                        break
                    distinct.add(more)
                    end = cont.end()
        elif (camel := _DISTINCT_CAMEL.match(text, pos)) is not None:
            distinct.add(clean_token(camel.group(1)))
        if distinct.full:
            break
    for pos in anchors(low, ("identify", "alias"), word_start=False):
        if (m := _IDENTIFY_CALL.match(text, pos)) is not None:
            distinct.add(clean_token(m.group(1)))

    # UUIDs by the word before them
    for m in _UUID.finditer(low):
        if (m.start() and low[m.start() - 1] in "0123456789abcdef-") or low[m.end() : m.end() + 1] in tuple(
            "0123456789abcdef-"
        ):
            continue
        kind = _closest_kind(low, m.start(), _UUID_KINDS)
        value = m.group(0)
        bag = {"survey": surveys, "person": persons, "error": fingerprints, "distinct": distinct}.get(
            kind or ""
        )
        if bag is not None:
            bag.add(value)
        if surveys.full and persons.full:
            break

    for m in matches_near(_EMAIL, text, find_all(low, "@", word_start=False), 65, 330):
        emails.add(m.group(0).lower())
        if emails.full:
            break

    keys = extract_flags_and_events(text, low, vocabulary)
    for value in keys.distinct_ids:
        distinct.add(value)
    for value in keys.flags:
        flags.add(value)
    for value in keys.events:
        events.add(value)
    for value in extract_errors(text, low, vocabulary.error_phrases):
        errors.add(value)
    for pos in find_all(low, "fingerprint"):
        if (m := _FINGERPRINT.match(text, pos)) is not None:
            fingerprints.add(clean_token(m.group(1)))

    for m in _VERSION.finditer(head):
        releases.add(m.group(1))
        if releases.full:
            break
    for pattern in _DATES:
        for m in pattern.finditer(head):
            dates.add(" ".join(m.group(0).split()))
            if dates.full:
                break

    sdks = extract_sdks(text, sdk_catalogue, low=low)
    private = [
        *distinct.items,
        *persons.items,
        *emails.items,
        *events.items,
        *flags.items,
        *fingerprints.items,
        *surveys.items,
        *hosts.items,
    ]
    symbols = extract_symbols(head, private, vocabulary)
    return Identifiers(
        distinct_ids=distinct.items,
        person_ids=persons.items,
        emails=emails.items,
        event_names=events.items,
        flag_keys=flags.items,
        error_messages=errors.items,
        fingerprints=fingerprints.items,
        survey_ids=surveys.items,
        urls=urls.items,
        hosts=hosts.items,
        releases=releases.items,
        dates=dates.items,
        sdks=sdks,
        code_symbols=symbols,
    )


def extract_emails(text: str) -> list[str]:
    text = bounded(text or "")
    bag = Bag()
    for m in matches_near(_EMAIL, text, find_all(text, "@", word_start=False), 65, 330):
        bag.add(m.group(0).lower())
        if bag.full:
            break
    return bag.items
