"""Rank search hits against the ticket: how many of its symbols and symptom words hit, then state, then recency.

Words are compared as GitHub tokenises them (split on non-word characters, case-insensitive) with a
light suffix stem on both sides, so "closing" meets "closed" and "surveys" meets "survey".

Points: a code symbol in the title 4, only in the body 3; a symptom word in the title 2, only in the
body 1; the error core as a phrase 4; the customer's SDK named 1.
Signal (`match_signal` in the evidence row, also `exact_match` / `strong_match`):
  exact_match   the error core is in the issue, or a symbol hits and ≥ 2 symptom words hit with at
                least one hit in the title
  strong_match  a symbol hits, or ≥ 2 symptom words hit
  weak_match    anything else GitHub returned
Order: signal, points, state (closed as completed > open > closed otherwise), most recently updated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

SIGNALS = ("weak_match", "strong_match", "exact_match")


def _stem(word: str) -> str:
    """Plural first, then one verb ending: "recordings", "recording" and "recorded" all give "record"."""
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    for suffix in ("ing", "ed", "e"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def stems(text: str) -> list[str]:
    return [_stem(w) for w in _WORD.findall(text.lower())]


def _has(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


@dataclass
class Match:
    points: int = 0
    symbols: list[str] = field(default_factory=list)
    symptoms: list[str] = field(default_factory=list)
    title_hits: int = 0
    error_hit: bool = False
    sdk_hit: bool = False

    @property
    def signal(self) -> str:
        if self.error_hit or (self.symbols and len(self.symptoms) >= 2 and self.title_hits >= 1):
            return "exact_match"
        if self.symbols or len(self.symptoms) >= 2:
            return "strong_match"
        return "weak_match"

    @property
    def matched_terms(self) -> list[str]:
        return [*self.symbols, *self.symptoms]


def score(
    item: dict[str, Any],
    symbols: list[str],
    symptoms: list[str],
    error_core: str = "",
    sdk_names: list[str] | None = None,
) -> Match:
    """How well one search item (issue or PR) matches the ticket (module docstring)."""
    title = stems(str(item.get("title") or ""))
    body = stems(str(item.get("body") or ""))
    match = Match()
    for symbol in symbols:
        tokens = stems(symbol)
        if _has(title, tokens):
            match.points += 4
            match.title_hits += 1
            match.symbols.append(symbol)
        elif _has(body, tokens):
            match.points += 3
            match.symbols.append(symbol)
    for word in symptoms:
        tokens = stems(word)
        if _has(title, tokens):
            match.points += 2
            match.title_hits += 1
            match.symptoms.append(word)
        elif _has(body, tokens):
            match.points += 1
            match.symptoms.append(word)
    if error_core and (_has(title, stems(error_core)) or _has(body, stems(error_core))):
        match.points += 4
        match.error_hit = True
    for name in sdk_names or []:
        if _has(title + body, stems(name)):
            match.points += 1
            match.sdk_hit = True
            break
    return match


def _state_rank(item: dict[str, Any]) -> int:
    state = str(item.get("state") or "")
    reason = str(item.get("state_reason") or "")
    pull = item.get("pull_request")
    if isinstance(pull, dict):
        return 2 if pull.get("merged_at") else (1 if state == "open" else 0)
    if state == "closed":
        return 2 if reason in ("", "completed") else 0
    return 1


def rank_key(item: dict[str, Any], match: Match) -> tuple[int, int, int, str]:
    """Sort key, largest first: signal, points, state, recency."""
    return (SIGNALS.index(match.signal), match.points, _state_rank(item), str(item.get("updated_at") or ""))


def repo_of(item: dict[str, Any]) -> str:
    """ "owner/name" of a search item, from `repository_url` (else `html_url`)."""
    url = str(item.get("repository_url") or "")
    if "/repos/" in url:
        return url.rstrip("/").split("/repos/", 1)[1]
    found = re.search(r"https?://[^/]+/([^/]+/[^/]+)/(?:issues|pull)/\d+", str(item.get("html_url") or ""))
    return found.group(1) if found else ""
