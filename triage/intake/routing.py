"""Routing: the playbooks' weighted keywords score a ticket; the best playbook is its product area.

A product area *is* a playbook id: the vocabulary lives in the playbook files, so a company defines its
own areas without editing Python. Keywords are counted on a normalised copy of the text (lowercase,
"-" and "_" as spaces, single spaces). Phrases made of plain words are found by walking the word list
once (first-word index); phrases with other characters ("/flags", "posthog.capture") by `str.find`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from triage.intake.scan import find_all, is_word_char
from triage.models import Identifiers
from triage.playbooks import OTHER_AREA, Playbook, playbook_for_area

MIN_ROUTE_SCORE = 2.5  # below this the ticket goes to "other"
SUBJECT_FACTOR = 2.5  # a keyword in the subject counts this many times its weight (once)
BODY_REPEAT_CAP = 3  # a keyword repeated in the body counts at most this many times
TAG_AREA_WEIGHT = 4.0  # a Zendesk tag naming the area ("feature_flags")
TAG_KEYWORD_FACTOR = 1.5  # a Zendesk tag equal to a routing keyword ("ingestion")

ROUTING_CHARS = 50_000
_ROUTE_SEP = str.maketrans({"_": " ", "-": " "})
_ROUTE_WORD = re.compile(r"\$?[^\W_]+")


def normalise(phrase: str) -> str:
    return " ".join(phrase.lower().translate(_ROUTE_SEP).split())


@dataclass(frozen=True)
class KeywordIndex:
    by_first: dict[str, list[tuple[str, ...]]]  # first word → word tuples of plain phrases
    special: tuple[str, ...]  # normalised phrases with other characters


@lru_cache(maxsize=64)
def keyword_index(keywords: tuple[str, ...]) -> KeywordIndex:
    by_first: dict[str, list[tuple[str, ...]]] = {}
    special: list[str] = []
    for keyword in keywords:
        norm = normalise(keyword)
        words = tuple(_ROUTE_WORD.findall(norm))
        if words and " ".join(words) == norm:
            by_first.setdefault(words[0], []).append(words)
        elif norm:
            special.append(norm)
    return KeywordIndex(by_first=by_first, special=tuple(special))


@dataclass(frozen=True)
class Prepared:
    """A text normalised for phrase matching, with the positions of each word (first 200 per word)."""

    norm: str
    words: list[str]
    where: dict[str, list[int]]


def prepare(text: str) -> Prepared:
    norm = " ".join(text[:ROUTING_CHARS].lower().translate(_ROUTE_SEP).split())
    words = _ROUTE_WORD.findall(norm)
    where: dict[str, list[int]] = {}
    for i, word in enumerate(words):
        positions = where.get(word)
        if positions is None:
            where[word] = [i]
        elif len(positions) < 200:
            positions.append(i)
    return Prepared(norm=norm, words=words, where=where)


def keyword_counts(index: KeywordIndex, text: Prepared, cap: int) -> dict[str, int]:
    """How often each phrase of the index occurs (at most `cap`), ordered by first occurrence."""
    found: list[tuple[int, str, int]] = []  # (first position, phrase, count)
    if not text.norm:
        return {}
    words = text.words
    for first, phrases in index.by_first.items():
        positions = text.where.get(first)
        if not positions:
            continue
        for phrase in phrases:
            n, count, at = len(phrase), 0, -1
            for i in positions:
                if n == 1 or tuple(words[i : i + n]) == phrase:
                    count += 1
                    at = i if at < 0 else at
                    if count >= cap:
                        break
            if count:
                found.append((at, " ".join(phrase), count))
    offset = len(words)
    for phrase in index.special:
        hits, at = 0, -1
        for pos in find_all(text.norm, phrase, word_start=phrase[0].isalnum(), limit=cap * 4):
            end = pos + len(phrase)
            if phrase[-1].isalnum() and end < len(text.norm) and is_word_char(text.norm[end]):
                continue
            hits += 1
            at = pos if at < 0 else at
            if hits >= cap:
                break
        if hits:
            found.append((offset + at, phrase, hits))
    found.sort()
    return {phrase: count for _, phrase, count in found}


def score_playbooks(
    text: str,
    identifiers: Identifiers,
    playbooks: Mapping[str, Playbook],
    *,
    subject: str = "",
    tags: Iterable[str] = (),
) -> dict[str, float]:
    """A routing score per playbook id: weighted keywords (subject counts more), tags, identifier types."""
    body = prepare(text or "")
    subject_text = prepare((subject or "")[:2000])
    tag_list = [normalise(t) for t in list(tags)[:50] if t]
    scores: dict[str, float] = {}
    for book in playbooks.values():
        weights = {normalise(k): float(v) for k, v in book.routing.keywords.items()}
        index = keyword_index(tuple(sorted(book.routing.keywords)))
        score = 0.0
        for key, count in keyword_counts(index, body, BODY_REPEAT_CAP).items():
            score += weights.get(key, 0.0) * min(count, BODY_REPEAT_CAP)
        for key in keyword_counts(index, subject_text, 1):
            score += weights.get(key, 0.0) * SUBJECT_FACTOR
        own = normalise(book.id)
        for tag in tag_list:
            if tag == own:
                score += TAG_AREA_WEIGHT
            elif tag in weights:
                score += weights[tag] * TAG_KEYWORD_FACTOR
        for field, weight in book.routing.identifiers.items():
            if getattr(identifiers, field, None):
                score += float(weight)
        scores[book.id] = round(score, 2)
    return scores


def best_playbook(scores: Mapping[str, float], playbooks: Mapping[str, Playbook]) -> Playbook:
    """The highest-scoring playbook, or the "other" playbook when no score reaches MIN_ROUTE_SCORE."""
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    if ranked and ranked[0][1] >= MIN_ROUTE_SCORE and ranked[0][0] in playbooks:
        return playbooks[ranked[0][0]]
    return playbook_for_area(playbooks, OTHER_AREA)


def area_scores(scores: Mapping[str, float]) -> dict[str, float]:
    """The positive scores per area (playbook id), best first."""
    return dict(sorted(((k, v) for k, v in scores.items() if v > 0), key=lambda item: -item[1]))


def route(
    text: str,
    identifiers: Identifiers,
    playbooks: Mapping[str, Playbook],
    *,
    subject: str = "",
    tags: Iterable[str] = (),
) -> tuple[str, dict[str, float]]:
    """The product area (playbook id) with the highest routing score, or "other" below MIN_ROUTE_SCORE,
    and the scores."""
    scores = score_playbooks(text, identifiers, playbooks, subject=subject, tags=tags)
    return best_playbook(scores, playbooks).id, area_scores(scores)


def phrases(*words: str) -> KeywordIndex:
    """A phrase list matched like routing keywords (case-insensitive, "-"/"_" as spaces, whole words)."""
    return keyword_index(tuple(words))


def phrase_hits(index: KeywordIndex, prepared: Prepared, cap: int = 3) -> dict[str, int]:
    return keyword_counts(index, prepared, cap)
