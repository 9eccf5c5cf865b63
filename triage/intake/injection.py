"""Suspected prompt injection: text in a ticket that tries to instruct an AI, or Slack broadcast markup.

Not a phrase list: the text is normalised first (NFKC, invisible characters removed, look-alike
Cyrillic/Greek letters folded to Latin, accents stripped, lower-cased, whitespace collapsed), then three
kinds of signal are looked for, each in several languages (vocabulary in `injection.yaml`):

1. *override* — a verb like "ignore / olvida / vergiss / oublie" followed within 60 characters by a
   target like "instructions / rules / system prompt / Anweisungen / consignes";
2. *address and role* — text that speaks to the model ("note to the AI", "if you are a language
   model", "liebe KI"), changes its role ("you are now", "from now on you", "developer mode"), or uses
   chat/prompt markup (`<|im_start|>`, `[INST]`, `</ticket_data>`, `### system`, `<!channel>`);
3. *steering* — a polite, field-specific request about OUR report: a verb ("set / mark / write"), one of
   the report's fields within 30 characters ("confidence", "root cause", "known bug", "escalation"),
   then a value within 50 ("confirmed", "no escalation", "not a bug").

Words that merely mention AI or confirmation ("Is this confirmed by data?", "our AI assistant says")
trigger none of these. When a model is configured, intake also asks it (`IntakeRefinement.
injection_suspected`) and either signal flags the ticket (`merge_refinement`). Measured with
`bench/injection_detection.py` on `tests/data/injection_cases.json`.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import yaml

from triage.intake.scan import MAX_ANCHORS, bounded
from triage.redaction import normalize

VOCABULARY = Path(__file__).with_name("injection.yaml")


def _entries(spec: str) -> list[str]:
    return sorted((w.strip() for w in spec.split("|") if w.strip()), key=len, reverse=True)


def _alternation(spec: str) -> str:
    return "|".join(re.escape(w).replace(r"\ ", r"\s+") for w in _entries(spec))


def _first_words(spec: str) -> frozenset[str]:
    return frozenset(w.split()[0] for w in _entries(spec))


_WORD = re.compile(r"[a-z]+")


class _Patterns:
    """Anchored patterns: each is tried only where a word starts that can begin it (linear on big input)."""

    def __init__(self, data: dict[str, object]) -> None:
        table = {str(k): str(v) for k, v in dict(data["confusables"]).items()}  # type: ignore[arg-type]
        self.confusables = str.maketrans(table)
        spec = {k: str(v) for k, v in data.items() if k != "confusables"}
        words = {k: _alternation(v) for k, v in spec.items()}
        self.anchored: dict[str, tuple[frozenset[str], re.Pattern[str]]] = {
            "override": (
                _first_words(spec["override_verbs"]),
                re.compile(
                    rf"(?:{words['override_verbs']})\b[^.\n]{{0,60}}?\b(?:{words['override_targets']})\b"
                ),
            ),
            "address": (
                _first_words(spec["address"]) | _first_words(spec["role_change"]),
                re.compile(rf"(?:{words['address']}|{words['role_change']})(?![a-z])"),
            ),
            "steer": (
                _first_words(spec["steer_verbs"]),
                re.compile(
                    rf"(?:{words['steer_verbs']})\b[^.\n]{{0,30}}?\b(?:{words['steer_fields']})\b"
                    rf"[^.\n]{{0,50}}?(?<![a-z])(?:{words['steer_values']})(?![a-z])"
                ),
            ),
        }
        self.markup = tuple(_entries(spec["markup"]))
        self.line_role = re.compile(r"(?m)^[ \t]*(?:system|assistant|developer)[ \t]*:")


@lru_cache(maxsize=1)
def _patterns() -> _Patterns:
    return _Patterns(yaml.safe_load(VOCABULARY.read_text(encoding="utf-8")))


_COMBINING = re.compile(r"[\u0300-\u036f]")


def fold(text: str) -> str:
    """The text as the detector reads it: normalised, confusables folded, accents stripped, lower-case."""
    text = normalize(bounded(text or "")).lower()
    if text.isascii():
        return text
    return _COMBINING.sub("", unicodedata.normalize("NFD", text.translate(_patterns().confusables)))


def injection_signals(text: str) -> list[str]:
    """The kinds of injection signal found in the text (empty: none)."""
    p = _patterns()
    low = fold(text)
    flat = " ".join(low.split())
    found: list[str] = []
    tries = dict.fromkeys(p.anchored, MAX_ANCHORS)  # bounded work per kind, like the other extractors
    for match in _WORD.finditer(flat):
        word, pos = match.group(0), match.start()
        for kind, (starts, pattern) in p.anchored.items():
            if word in starts and kind not in found and tries[kind] > 0:
                tries[kind] -= 1
                if pattern.match(flat, pos):
                    found.append(kind)
    if any(m in flat for m in p.markup) or p.line_role.search(low):
        found.append("markup")
    return found


def detect_injection(text: str) -> bool:
    """True when the text holds instructions aimed at an AI (prompt injection) or Slack broadcast markup."""
    return bool(injection_signals(text))
