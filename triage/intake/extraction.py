"""Identifier extraction: every id, name and message in a ticket that a research step can look up."""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping, Sequence
from urllib.parse import unquote, urlsplit

from triage.intake.scan import (
    HEURISTIC_CHARS,
    MAX_CANDIDATES,
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
from triage.models import Identifiers
from triage.playbooks import SdkSpec

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

_FLAG_CALL = re.compile(
    r"\b(?:is_?feature_?enabled|get_?feature_?flag(?:_?payload|_?result)?|use_?feature_?flag(?:_?enabled|_?variant_?key"
    r"|_?payload)?|feature_?enabled\??|get_?feature_?flag_?variant|is_?enabled|onFeatureFlag|getRemoteConfig)"
    r"\s*\(\s*[\"'`]([^\"'`\s]{1,100})[\"'`](?:\s*,\s*[\"'`]([^\"'`\s]{1,100})[\"'`])?",
    re.IGNORECASE,
)
_FLAG_CALL_ANCHORS = word_list(
    "featureenabled|feature_enabled|featureflag|feature_flag|isenabled|is_enabled|getremoteconfig"
)
_FLAG_ADJACENT = re.compile(
    r"\b(?:feature[ -]?flag|flag(?:[ _]key)?|experiment)[ \t]+(?:key[ \t]+|named[ \t]+|called[ \t]+)?"
    r"([a-z0-9]+(?:[-_][a-z0-9]+){1,12})\b",
    re.IGNORECASE,
)
_FLAG_WORDS = ("flag", "experiment", "multivariate")
_EVENT_WORDS = ("event", "evento", "ereignis", "événement", "evenement", "capture", "fire", "track")
_SURVEY_WORDS = word_list(
    "survey|encuesta|umfrage|enquête|enquete|sondage|pesquisa|questionário|questionario"
)
_PERSON_WORDS = ("person", "persona", "pessoa")
_ERROR_ID_WORDS = ("error tracking", "error_tracking", "exception", "issue id", "issue_id", "fingerprint")
_QUOTED = re.compile(r"`([^`\n]{1,100})`|\"([^\"\n]{1,100})\"|'([^'\n]{1,100})'|“([^”\n]{1,100})”")
_SNAKE = re.compile(r"(?<![\w$.-])([a-z][a-z0-9]{0,40}(?:_[a-z0-9]{1,40}){1,8})(?![\w-])")
_KEY_TOKEN = re.compile(r"^[A-Za-z0-9][\w.:-]{0,99}$")
_EVENT_TOKEN = re.compile(r"^\$?[A-Za-z][\w.:/ -]{0,59}$")
_DOLLAR = re.compile(r"\$[a-z][a-z0-9_]{1,40}\b")
_CAPTURE_CALL = re.compile(
    r"capture\s*\(\s*[\"'`]([^\"'`\n]{1,80})[\"'`](?:\s*,\s*[\"'`]([^\"'`\n]{1,80})[\"'`])?", re.IGNORECASE
)
_EVENT_FIELD = re.compile(r"event[\"']?\s*[:=]\s*[\"'`]([^\"'`\n]{1,80})[\"'`]", re.IGNORECASE)

_ERROR_LINE = re.compile(
    r"(?<![\w.])((?:[A-Za-z_]\w{0,40}\.){0,4}(?:[A-Z]\w{0,40}?)?(?:Error|Exception)):[ \t]+([^\n]{3,300})"
)
_ERROR_QUOTED = re.compile(r"[\"“`]([^\"”`\n]{3,400})[\"”`]")
_ERROR_QUOTED_WORD = re.compile(
    r"\b(?:error|exception|failed|failure|cannot|unable|denied|refused|invalid|unauthorized|forbidden"
    r"|timed out"
    r"|timeout)\b",
    re.IGNORECASE,
)
_ERROR_ANCHORS = word_list(
    "error|exception|failed|failure|cannot|unable|denied|refused|invalid|unauthorized|forbidden|"
    "timed out|timeout"
)
_HTTP_ERROR = re.compile(
    r"\b([45]\d\d)[ \t]+(Bad Request|Unauthorized|Forbidden|Not Found|Method Not Allowed|Conflict"
    r"|Payload Too Large|Content Too Large|Too Many Requests|Internal Server Error|Bad Gateway"
    r"|Service Unavailable|Gateway Timeout)\b",
    re.IGNORECASE,
)
_HTTP_ANCHORS = word_list(
    "bad request|unauthorized|forbidden|not found|method not allowed|conflict|too large|"
    "too many requests|internal server error|bad gateway|service unavailable|gateway timeout"
)
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
_NOT_KEYS = frozenset(
    word_list(
        "true|false|null|none|undefined|on|off|enabled|disabled|control|test|flag|flags|key|id|"
        "variant|payload|distinct_id|person_id|project_id|api_key"
    )
)
_NOT_EVENTS = frozenset(
    word_list(
        "distinct_id|person_id|user_id|project_id|team_id|api_key|lib_version|session_id|window_id|"
        "feature_flag|feature_flags|api_host|ui_host|capture_pageview|capture_pageleave|"
        "person_profiles|identified_only|always|disable_session_recording|autocapture|persistence|"
        "true|false|null|none|undefined|event|events|properties|timestamp|uuid"
    )
)
KNOWN_EVENTS = frozenset(
    word_list(
        "$pageview|$pageleave|$autocapture|$identify|$create_alias|$merge_dangerously|"
        "$groupidentify|$feature_flag_called|$exception|$rageclick|$dead_click|$web_vitals|"
        "$survey_shown|$survey_sent|$survey_dismissed|$screen|$snapshot|$opt_in|$set|$ai_generation|"
        "$ai_span|$ai_trace|$ai_embedding|$copy_autocapture|$heatmap|$feature_enrollment_update|"
        "$feature_view|$feature_interaction|$web_experiment_applied|$app_installed|$app_updated|"
        "$app_opened|$app_backgrounded"
    )
)


# ---------------------------------------------------------------- identifiers

_SENTENCE_BREAK = re.compile(r"[.!?](?:\s|$)|\n\s*\n")


def _distance(text: str, anchors: list[int], pos: int, end: int, limit: int = 160) -> int | None:
    """Distance from the token [pos, end) to the nearest anchor in the same sentence, or None."""
    if not anchors:
        return None
    best: int | None = None
    i = bisect.bisect_left(anchors, pos)
    for j in (i - 1, i):
        if 0 <= j < len(anchors):
            a = anchors[j]
            if a < pos:
                gap, between = pos - a, text[a:pos]
            elif a >= end:
                gap, between = a - end, text[end:a]
            else:
                continue
            if gap > limit or _SENTENCE_BREAK.search(between):
                continue
            if best is None or gap < best:
                best = gap
    return best


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


def extract_identifiers(text: str, sdk_catalogue: Sequence[SdkSpec] | None = None) -> Identifiers:
    """Every identifier in the text that a research step can look up. Never raises; bounded per type."""
    text = bounded(text or "")
    low = ascii_lower(text)
    head = text[:HEURISTIC_CHARS]
    distinct, persons, emails = Bag(), Bag(), Bag()
    events, flags, errors = Bag(), Bag(), Bag(max_len=200)
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

    # flag keys and events: explicit calls first, then quoted / snake_case tokens near a context word
    for m in matches_near(_FLAG_CALL, text, anchors(low, _FLAG_CALL_ANCHORS, word_start=False), 8, 260):
        flags.add(m.group(1))
        if m.group(2):
            distinct.add(m.group(2))
    for m in matches_near(
        _FLAG_ADJACENT, text, anchors(low, ("flag", "experiment"), word_start=False), 9, 160
    ):
        token = m.group(1)
        if token.lower() not in _NOT_KEYS:
            flags.add(token)
    for pos in find_all(low, "capture", word_start=False):
        if (m := _CAPTURE_CALL.match(text, pos)) is None:
            continue
        if m.group(2):  # capture('distinct_id', 'event') - the old server-side signature
            distinct.add(m.group(1))
            events.add(m.group(2))
        else:
            events.add(m.group(1))
    for pos in find_all(low, "event"):
        if (m := _EVENT_FIELD.match(text, pos)) is not None:
            events.add(m.group(1))
    flag_anchors = anchors(low, _FLAG_WORDS)
    event_anchors = anchors(low, _EVENT_WORDS)
    for pos in find_all(low, "$", word_start=False):
        if (m := _DOLLAR.match(text, pos)) is None:
            continue
        name = m.group(0)
        if name in KNOWN_EVENTS or _distance(text, event_anchors, m.start(), m.end(), 60) is not None:
            events.add(name)
        if events.full:
            break

    quoted = matches_near(_QUOTED, text, sorted({*flag_anchors, *event_anchors}), 160, 160, cover=False)
    for m in quoted[:MAX_CANDIDATES]:
        token = next(g for g in m.groups() if g is not None).strip()
        start, end = m.span()
        d_flag = _distance(text, flag_anchors, start, end)
        d_event = _distance(text, event_anchors, start, end)
        if d_flag is None and d_event is None:
            continue
        is_key = bool(_KEY_TOKEN.match(token)) and token.lower() not in _NOT_KEYS and not token.isdigit()
        is_event = (
            bool(_EVENT_TOKEN.match(token))
            and token.lower() not in _NOT_EVENTS
            and len(token.split()) <= 4
            and not token.isdigit()
        )
        if d_flag is not None and is_key and (d_event is None or d_flag <= d_event or not is_event):
            if token not in events:
                flags.add(token)
        elif d_event is not None and is_event and token not in flags:
            events.add(token)
    for m in matches_near(_SNAKE, text, event_anchors, 120, 130, cover=False)[:MAX_CANDIDATES]:
        if events.full:
            break
        token = m.group(1)
        if token in _NOT_EVENTS or token in flags:
            continue
        d_event = _distance(text, event_anchors, m.start(), m.end(), 120)
        if d_event is None:
            continue
        d_flag = _distance(text, flag_anchors, m.start(), m.end(), 120)
        if d_flag is None or d_event < d_flag:
            events.add(token)

    # errors
    error_anchors = anchors(low, ("error", "exception"), word_start=False)
    for m in matches_near(_ERROR_LINE, text, error_anchors, 220, 330):
        errors.add(f"{m.group(1)}: {m.group(2).strip()}".rstrip(" \"'`"))
        if errors.full:
            break
    for m in matches_near(_ERROR_QUOTED, text, anchors(low, _ERROR_ANCHORS, word_start=False), 402, 402):
        value = m.group(1).strip()
        known = any(value in e or e in value for e in errors.items)
        if len(value) <= 200 and _ERROR_QUOTED_WORD.search(value) and not known:
            errors.add(value)
    for m in matches_near(_HTTP_ERROR, text, anchors(low, _HTTP_ANCHORS, word_start=False), 6, 40):
        value = m.group(0)
        if not any(value in e for e in errors.items):
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
    )


def extract_emails(text: str) -> list[str]:
    text = bounded(text or "")
    bag = Bag()
    for m in matches_near(_EMAIL, text, find_all(text, "@", word_start=False), 65, 330):
        bag.add(m.group(0).lower())
        if bag.full:
            break
    return bag.items
