"""Flag keys and event names: customer identifiers, so only what really looks like one.

- Flag keys: the argument of a flag API call (`isFeatureEnabled('x')`, `get_feature_flag("x", "user")`),
  a key right after "flag"/"feature flag"/"experiment" (`flag new-checkout`), or a quoted token next to
  "flag". SDK API names (`isFeatureEnabled`, `useFeatureFlagEnabled`) are code symbols, never flag keys.
- Event names: a `$`-event of the product (profile `known_events`), a `$`-name right next to "event", the
  argument of `capture()`, an `event: "x"` field, a quoted name next to "event", or an unquoted snake_case
  name directly before or after "event". Property names (`$set`, `utm_source`), config options and
  third-party webhook types (`customer.discount.created`) are not events.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from triage.intake.scan import MAX_CANDIDATES, Bag, anchors, find_all, matches_near, word_list
from triage.playbooks import Vocabulary

NEXT_TO = 30  # characters between a quoted token and "flag"/"event" that still count as "next to"

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
_EVENT_WORDS = ("event", "evento", "ereignis", "événement", "evenement", "capture", "track")
_QUOTED = re.compile(r"`([^`\n]{1,100})`|\"([^\"\n]{1,100})\"|'([^'\n]{1,100})'|“([^”\n]{1,100})”")
_KEY_TOKEN = re.compile(r"^[A-Za-z0-9][\w.:-]{0,99}$")
_EVENT_TOKEN = re.compile(r"^\$?[A-Za-z][\w.:/ -]{0,59}$")
_DOLLAR = re.compile(r"\$[a-z][a-z0-9_]{1,40}\b")
_CAPTURE_CALL = re.compile(
    r"capture\s*\(\s*[\"'`]([^\"'`\n]{1,80})[\"'`](?:\s*,\s*[\"'`]([^\"'`\n]{1,80})[\"'`])?", re.IGNORECASE
)
_EVENT_FIELD = re.compile(r"event[\"']?\s*[:=]\s*[\"'`]([^\"'`\n]{1,80})[\"'`]", re.IGNORECASE)
_SNAKE = r"([a-z][a-z0-9]{0,40}(?:_[a-z0-9]{1,40}){1,8})(?![\w.-])"
_SNAKE_AFTER_EVENT = re.compile(
    rf"(?:event|evento|ereignis)s?[ \t]*(?::|\(|named|called)?[ \t]*[\"'`]?{_SNAKE}", re.IGNORECASE
)
_SNAKE_LIST_MORE = re.compile(rf"[\"'`]?[ \t]*(?:,|\band\b|\bor\b|/)[ \t]*[\"'`]?{_SNAKE}", re.IGNORECASE)
_SNAKE_BEFORE_EVENT = re.compile(
    r"(?<![\w$.-])([a-z][a-z0-9]{0,40}(?:_[a-z0-9]{1,40}){1,8})[ \t]+(?:events?|evento|ereignis)\b",
    re.IGNORECASE,
)
# camelCase names that start like an API verb are SDK calls (`isFeatureEnabled`), not flag keys
_API_CONTINUES = re.compile(r"[A-Z]")  # "capture" + "Exception": a camelCase API name, not the word


def _word_len(low: str, pos: int) -> int:
    return next((len(w) for w in _EVENT_WORDS if low.startswith(w, pos)), 0)


API_NAME = re.compile(
    r"^(?:is|get|use|on|set|reload|override|capture|display|render|load|init|reset|identify|opt|register"
    r"|group|alias|start|stop|update|fetch|has|should|enable|disable|cancel|show|hide)[A-Z]\w*$"
)
_CAMEL = re.compile(r"^[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)+$")
_WEBHOOK_TYPE = re.compile(r"^[a-z_]+(?:\.[a-z_]+){2,}$")  # customer.discount.created
_NOT_KEYS = frozenset(
    word_list(
        "true|false|null|none|undefined|on|off|enabled|disabled|control|test|flag|flags|key|id|"
        "variant|payload|distinct_id|person_id|project_id|api_key"
    )
)
_SENTENCE_BREAK = re.compile(r"[.!?](?:\s|$)|\n\s*\n")


def distance(text: str, anchor_positions: list[int], pos: int, end: int, limit: int = 160) -> int | None:
    """Distance from the token [pos, end) to the nearest anchor in the same sentence, or None."""
    if not anchor_positions:
        return None
    best: int | None = None
    i = bisect.bisect_left(anchor_positions, pos)
    for j in (i - 1, i):
        if 0 <= j < len(anchor_positions):
            a = anchor_positions[j]
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


@dataclass
class FlagsAndEvents:
    flags: list[str] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    distinct_ids: list[str] = field(default_factory=list)  # from `capture('id', 'event')`, flag calls


def extract_flags_and_events(text: str, low: str, vocabulary: Vocabulary) -> FlagsAndEvents:
    flags, events, distinct = Bag(), Bag(), Bag()
    known = {e.lower() for e in vocabulary.known_events}
    not_events = {e.lower() for e in vocabulary.not_events}
    never = {w.lower() for w in vocabulary.not_identifiers} | {o.lower() for o in vocabulary.config_options}

    def event_like(token: str) -> bool:
        low_token = token.lower()
        return (
            bool(_EVENT_TOKEN.match(token))
            and low_token not in never
            and low_token not in not_events
            and not low_token.startswith("utm_")
            and not _WEBHOOK_TYPE.match(token)
            and not API_NAME.match(token)
            and len(token.split()) <= 4
            and not token.isdigit()
        )

    for m in matches_near(_FLAG_CALL, text, anchors(low, _FLAG_CALL_ANCHORS, word_start=False), 8, 260):
        flags.add(m.group(1))
        if m.group(2):
            distinct.add(m.group(2))
    for m in matches_near(
        _FLAG_ADJACENT, text, anchors(low, ("flag", "experiment"), word_start=False), 9, 160
    ):
        token = m.group(1)
        if token.lower() not in _NOT_KEYS and token.lower() not in never:
            flags.add(token)
    for pos in find_all(low, "capture", word_start=False):
        if (m := _CAPTURE_CALL.match(text, pos)) is None:
            continue
        if m.group(2):  # capture('distinct_id', 'event') - the old server-side signature
            distinct.add(m.group(1))
            events.add(m.group(2))
        elif m.group(1).lower() not in not_events:
            events.add(m.group(1))
    for pos in find_all(low, "event"):
        if (m := _EVENT_FIELD.match(text, pos)) is not None and event_like(m.group(1)):
            events.add(m.group(1))
    flag_anchors = anchors(low, _FLAG_WORDS)
    event_anchors = anchors(low, _EVENT_WORDS[:5])  # "capture"/"track" only count for quoted names
    # "capture"/"track" as a word, not the start of another API name (`captureException('…')` takes no event)
    quoted_event_anchors = [
        pos for pos in anchors(low, _EVENT_WORDS) if not _API_CONTINUES.match(text, pos + _word_len(low, pos))
    ]
    for pos in find_all(low, "$", word_start=False):
        if (m := _DOLLAR.match(text, pos)) is None:
            continue
        name = m.group(0).lower()
        if name in known or (
            name not in not_events and distance(text, event_anchors, m.start(), m.end(), NEXT_TO) is not None
        ):
            events.add(m.group(0))
        if events.full:
            break

    quoted = matches_near(
        _QUOTED,
        text,
        sorted({*flag_anchors, *quoted_event_anchors}),
        NEXT_TO + 110,
        NEXT_TO + 110,
        cover=False,
    )
    for m in quoted[:MAX_CANDIDATES]:
        token = next(g for g in m.groups() if g is not None).strip()
        start, end = m.span()
        d_flag = distance(text, flag_anchors, start, end, NEXT_TO)
        d_event = distance(text, quoted_event_anchors, start, end, NEXT_TO)
        if d_flag is None and d_event is None:
            continue
        is_key = (
            bool(_KEY_TOKEN.match(token))
            and token.lower() not in _NOT_KEYS
            and token.lower() not in never
            and not token.isdigit()
            and not API_NAME.match(token)
            and not (_CAMEL.match(token) and (d_flag or 0) > 12)
        )
        is_event = event_like(token)
        if d_flag is not None and is_key and (d_event is None or d_flag <= d_event or not is_event):
            if token not in events:
                flags.add(token)
        elif d_event is not None and is_event and token not in flags and token not in distinct.items:
            events.add(token)  # not the distinct id of `capture('user-1', 'signup')`
    for m in matches_near(_SNAKE_AFTER_EVENT, text, event_anchors, 0, 90)[:MAX_CANDIDATES]:
        if m.group(1) in flags or not event_like(m.group(1)):
            continue
        events.add(m.group(1))
        end = m.end()
        for _ in range(5):  # a list: "events (order_placed, subscription_renewed)"
            more = _SNAKE_LIST_MORE.match(text, end)
            if more is None or more.group(1) in flags or not event_like(more.group(1)):
                break
            events.add(more.group(1))
            end = more.end()
    for m in matches_near(_SNAKE_BEFORE_EVENT, text, event_anchors, 90, 40, cover=False)[:MAX_CANDIDATES]:
        if m.group(1) not in flags and event_like(m.group(1)):
            events.add(m.group(1))
    return FlagsAndEvents(flags=flags.items, events=events.items, distinct_ids=distinct.items)
