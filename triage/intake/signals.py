"""Signals of a ticket besides its identifiers: urgency, blast radius, timeframe, language, issue type,
symptom keywords and missing information. The phrase lists are data: `signals_vocabulary.yaml`."""

from __future__ import annotations

import itertools
import re
from importlib import resources

import yaml

from triage.intake.extraction import MONTHS
from triage.intake.routing import KeywordIndex, Prepared, normalise, phrase_hits, phrases
from triage.intake.scan import HEURISTIC_CHARS, Bag
from triage.models import BlastRadius, Identifiers, IssueType, Urgency
from triage.playbooks import Playbook

_VOCAB = yaml.safe_load((resources.files("triage.intake") / "signals_vocabulary.yaml").read_text("utf-8"))
PRIORITY_URGENCY = {"urgent": Urgency.p1, "high": Urgency.p2, "normal": Urgency.p3, "low": Urgency.p4}
_P1_WORDS = phrases(*_VOCAB["urgency_p1"])
_P2_WORDS = phrases(*_VOCAB["urgency_p2"])
_ALL_USERS = phrases(*_VOCAB["all_users"])
_SOME_USERS = phrases(*_VOCAB["some_users"])
_SINGLE_USER = phrases(*_VOCAB["single_user"])
_TIMEFRAME_TAIL = r"[ \t]+((?:[^.,;!?\n<>()]|\.(?=\w)){2,70})"
_TIMEFRAME_STRONG = re.compile(
    r"\b(ever since|since|as of|desde|seit|depuis|a partir de)\b" + _TIMEFRAME_TAIL, re.IGNORECASE
)
_TIMEFRAME_WEAK = re.compile(r"\b(after|starting|started|beginning)\b" + _TIMEFRAME_TAIL, re.IGNORECASE)
_TIME_HINT = re.compile(
    r"\d|yesterday|today|tonight|morning|night|week|month|day|hour|monday|tuesday|wednesday|thursday|friday"
    r"|saturday|sunday|upgrad|updat|deploy|releas|migrat|switch|install|chang|ayer|semana|actualiz|gestern"
    r"|woche|update|hier|semaine|mise à jour|ontem|atualiz|\b" + MONTHS + r"\b",
    re.IGNORECASE,
)
_DURATION = re.compile(
    r"\b(?:for|in|over|during)[ \t]+the[ \t]+(?:past|last)[ \t]+(?:\d{1,3}|few|couple of|two|three|several)"
    r"[ \t]+(?:minutes|hours|days|weeks|months)\b"
    r"|\b(?:yesterday|this morning|last night|today|earlier today)\b",
    re.IGNORECASE,
)

_STOPWORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words) for lang, words in _VOCAB["stopwords"].items()
}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)


def detect_language(text: str) -> str:
    """ISO 639-1 code by stopword counts (words shared by several languages count fractionally)."""
    owners: dict[str, int] = {}
    for words in _STOPWORDS.values():
        for w in words:
            owners[w] = owners.get(w, 0) + 1
    scores = dict.fromkeys(_STOPWORDS, 0.0)
    for i, m in enumerate(_WORD.finditer((text or "")[:20_000].lower())):
        if i >= 3000:
            break
        word = m.group(0)
        share = owners.get(word)
        if not share:
            continue
        for lang, words in _STOPWORDS.items():
            if word in words:
                scores[lang] += 1.0 / share
    best = max(scores, key=lambda lang: scores[lang])
    if best != "en" and scores[best] >= 2.0 and scores[best] > scores["en"] * 1.1:
        return best
    return "en"


def urgency_of(priority: str | None, prepared: Prepared) -> Urgency:
    base = PRIORITY_URGENCY.get((priority or "").lower(), Urgency.p3)
    order = [Urgency.p1, Urgency.p2, Urgency.p3, Urgency.p4]
    words = Urgency.p4
    if phrase_hits(_P1_WORDS, prepared, 1):
        words = Urgency.p1
    elif phrase_hits(_P2_WORDS, prepared, 1):
        words = Urgency.p2
    return min(base, words, key=order.index)


def blast_radius_of(prepared: Prepared) -> BlastRadius:
    if phrase_hits(_SOME_USERS, prepared, 1):
        return BlastRadius.some_users
    if phrase_hits(_ALL_USERS, prepared, 1):
        return BlastRadius.all_users
    if phrase_hits(_SINGLE_USER, prepared, 1):
        return BlastRadius.single_user
    return BlastRadius.unknown


_CONJUNCTION = re.compile(
    r"\b(?:which|that|and|but|so|because|when|while|although|though|where|y|pero|porque|und|aber|weil"
    r"|et|mais|parce|e|mas|porque)\b",
    re.IGNORECASE,
)


_TIMEFRAME_STOP = frozenset(_VOCAB["timeframe_stop_words"])


def _timeframe_phrase(m: re.Match[str]) -> str | None:
    if not _TIME_HINT.search(m.group(2)):
        return None
    words = _CONJUNCTION.split(m.group(2), maxsplit=1)[0].split()
    for i, word in enumerate(words):
        if i >= 2 and word.lower() in _TIMEFRAME_STOP:
            words = words[:i]
            break
    return " ".join([m.group(1), *words][:9])


def timeframe_of(text: str) -> str:
    """When it started, in the customer's words: the most informative of the first "since …" phrases."""
    text = text[:HEURISTIC_CHARS]
    for pattern in (_TIMEFRAME_STRONG, _TIMEFRAME_WEAK):
        phrases = [p for m in itertools.islice(pattern.finditer(text), 20) if (p := _timeframe_phrase(m))]
        if phrases:
            return max(phrases[:3], key=len)
    m2 = _DURATION.search(text)
    return " ".join(m2.group(0).split()) if m2 else ""


# ---------------------------------------------------------------- issue type and symptom keywords

_ISSUE_WORDS: dict[IssueType, KeywordIndex] = {
    IssueType(kind): phrases(*words) for kind, words in _VOCAB["issue_types"].items()
}
_ZENDESK_TYPE = {"problem": IssueType.bug, "incident": IssueType.bug, "question": IssueType.how_to}


def issue_type_of(prepared: Prepared, zendesk_type: str | None, area_lean: IssueType | None) -> IssueType:
    """The issue type by phrase counts, the Zendesk type and the type the area's playbook leans to."""
    scores: dict[IssueType, float] = {}
    for kind, index in _ISSUE_WORDS.items():
        hits = sum(phrase_hits(index, prepared).values())
        if hits:
            scores[kind] = min(hits, 3)
    if (zt := _ZENDESK_TYPE.get((zendesk_type or "").lower())) is not None:
        scores[zt] = scores.get(zt, 0) + 1.5
    if area_lean is not None:
        scores[area_lean] = scores.get(area_lean, 0) + 2
    if IssueType.bug in scores and IssueType.how_to in scores and zendesk_type != "question":
        scores[IssueType.how_to] -= 1  # "how can we fix this" in a bug report is still a bug
    if not scores:
        return IssueType.unknown
    best = max(scores, key=lambda k: scores[k])
    return best if scores[best] > 0 else IssueType.unknown


# phrase (any language) → English GitHub search word
_SYMPTOMS = {normalise(phrase): str(word) for phrase, word in _VOCAB["symptoms"].items()}
_SYMPTOM_PHRASES = phrases(*_SYMPTOMS)
_METHOD_CALL = re.compile(r"\bposthog\.([A-Za-z_]\w{2,40})\s*\(")
_MARKUP = re.compile(r"<[^<>\n]{0,100}>")
_SUBJECT_WORD = re.compile(r"[A-Za-z][A-Za-z0-9.+#-]{2,30}")
_GENERIC = frozenset(_VOCAB["subject_generic_words"])
_SENTENCE_END = re.compile(r"[.!?](?=\s)")


def symptom_keywords(
    subject: str, text: str, ids: Identifiers, language: str, prepared: Prepared
) -> list[str]:
    bag = Bag(limit=8, max_len=60)
    for message in ids.error_messages[:1]:
        head = message.split(":", 1)[0].split(".")[-1]
        bag.add(
            head if head.endswith(("Error", "Exception")) and head not in ("Error", "Exception") else None
        )
    for m in _METHOD_CALL.finditer(text[:50_000]):
        bag.add(m.group(1))
        if len(bag.items) >= 3:
            break
    if language == "en":  # the customer's own one-line summary first
        id_values = {v.lower() for v in [*ids.flag_keys, *ids.event_names, *ids.distinct_ids, *ids.releases]}

        def summary_words(line: str, limit: int) -> int:
            added = 0
            for m in _SUBJECT_WORD.finditer(_MARKUP.sub(" ", line)[:300]):
                low = m.group(0).strip(".-").lower()
                if added < limit and not (
                    low in _GENERIC
                    or low in id_values
                    or low.startswith("posthog")
                    or any(c.isdigit() for c in low)
                    or low in bag
                ):
                    bag.add(low)
                    added += 1
            return added

        if summary_words(subject, 8) < 2:  # a generic subject ("Help", "Urgent issue"): the first sentence
            first = text.lstrip()[:200].split("\n", 1)[0]
            end = _SENTENCE_END.search(first)
            summary_words(first[: end.end()] if end else first, 4)
    hits: list[str] = []
    for phrase in phrase_hits(_SYMPTOM_PHRASES, prepared, 1):
        word = _SYMPTOMS.get(phrase)
        if word and word not in hits:
            hits.append(word)
    for word in hits[:4]:
        if not any(part in bag for part in word.split()):
            bag.add(word)
    return bag.items


def missing_info(book: Playbook, ids: Identifiers, timeframe: str) -> list[str]:
    missing: list[str] = []

    def present(requirement: str) -> bool:
        if requirement == "sdk":
            return bool(ids.sdks)
        if requirement == "sdk_version":
            return any(s.version for s in ids.sdks)
        if requirement == "timeframe":
            return bool(timeframe or ids.dates)
        return bool(getattr(ids, requirement, None))

    for requirement, label in book.required_info.items():
        options = [part.strip() for part in requirement.split("|") if part.strip()]
        if options and not any(present(option) for option in options):
            missing.append(label or requirement)
    return missing
