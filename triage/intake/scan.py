"""Scanning helpers shared by the intake modules: bounded bags, literal anchors, windowed matching.

Most extractors work from literal anchors: `str.find` on an ASCII-lowercased copy of the text (same
length, so positions agree), then an anchored regex at or near that position. Regexes that must scan
the whole text start with a literal or a narrow character class. Context-heavy heuristics look only at
the first HEURISTIC_CHARS characters. Every regular expression of the intake is linear on its input
(bounded quantifiers, no nested repetition of overlapping classes), and input is capped at
`MAX_SCAN_CHARS`, so a 100 kB ticket is cheap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_PER_TYPE = 10
MAX_SCAN_CHARS = 200_000  # longer text: the first 150k and the last 50k characters are scanned
MAX_ANCHORS = 400  # context words ("flag", "event", …) considered per ticket
MAX_CANDIDATES = 600  # quoted / snake_case tokens considered per ticket
HEURISTIC_CHARS = 20_000


def word_list(spec: str) -> tuple[str, ...]:
    """Word lists are written as one "a|b|c" string (compact and diff-friendly)."""
    return tuple(part for part in spec.split("|") if part)


class Bag:
    """An ordered, case-insensitively de-duplicated, bounded list."""

    def __init__(self, limit: int = MAX_PER_TYPE, max_len: int = 300) -> None:
        self.items: list[str] = []
        self._seen: set[str] = set()
        self.limit = limit
        self.max_len = max_len

    def add(self, value: str | None) -> None:
        if not value or len(self.items) >= self.limit:
            return
        value = value.strip()
        if not value or len(value) > self.max_len:
            value = value[: self.max_len].rstrip()
            if not value:
                return
        key = value.lower()
        if key in self._seen:
            return
        self._seen.add(key)
        self.items.append(value)

    def __contains__(self, value: str) -> bool:
        return value.lower() in self._seen

    @property
    def full(self) -> bool:
        return len(self.items) >= self.limit


def bounded(text: str) -> str:
    if len(text) <= MAX_SCAN_CHARS:
        return text
    return text[:150_000] + "\n" + text[-50_000:]


TRAILING = ".,;:!?)]}>'\"`*"


def clean_token(token: str) -> str:
    return token.strip().rstrip(TRAILING).lstrip("(['\"`")


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def is_word_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def find_all(low: str, needle: str, *, word_start: bool = True, limit: int = MAX_ANCHORS) -> list[int]:
    """Positions of `needle` in `low` (at most `limit`), optionally only where a word starts."""
    out: list[int] = []
    start, tries = 0, 0
    while len(out) < limit and tries < limit * 4:
        pos = low.find(needle, start)
        if pos < 0:
            break
        tries += 1
        if not word_start or pos == 0 or not is_word_char(low[pos - 1]):
            out.append(pos)
        start = pos + 1
    return out


def anchors(
    low: str, needles: Iterable[str], *, word_start: bool = True, limit: int = MAX_ANCHORS
) -> list[int]:
    positions: set[int] = set()
    for needle in needles:
        positions.update(find_all(low, needle, word_start=word_start, limit=limit))
    return sorted(positions)[:limit]


def matches_near(
    pattern: re.Pattern[str],
    text: str,
    anchors: Iterable[int],
    back: int,
    forward: int,
    *,
    cover: bool = True,
) -> list[re.Match[str]]:
    """Matches of `pattern` in windows around the anchors, in text order, without duplicates.

    With `cover`, only matches whose span contains the anchor are kept.
    """
    found: dict[int, re.Match[str]] = {}
    n = len(text)
    for pos in anchors:
        hi = min(n, pos + forward)
        for m in pattern.finditer(text, max(0, pos - back), hi):
            if cover and not (m.start() <= pos < max(m.end(), m.start() + 1)):
                continue
            if m.end() == hi < n:  # may be cut by the window: a wider window will see it whole
                continue
            found.setdefault(m.start(), m)
    return [found[k] for k in sorted(found)]
