"""Suspected prompt injection: text in a ticket that tries to instruct an AI, or Slack broadcast markup."""

from __future__ import annotations

import re

from triage.intake.scan import HEURISTIC_CHARS, anchors, bounded, find_all, word_list

_INJECTION_PHRASES = (
    "you are now",
    "from now on you",
    "from now on, you",
    "system prompt",
    "developer message",
    "developer mode",
    "jailbreak",
    "dan mode",
    "new instructions:",
    "mark this ticket as",
    "mark the ticket as",
    "confirmed by data",
    "<!channel>",
    "<!here>",
    "<!everyone>",
    "<|im_start|>",
    "<|im_end|>",
    "[inst]",
    "[/inst]",
)
_INJECTION_VERBS = word_list(
    "ignore|ignora|ignorier|disregard|forget|override|bypass|olvida|vergiss|oublie|esqueça|esqueca"
)
_INJECTION_IGNORE = re.compile(
    r"[a-zçéèêãõáíóúäöü]+\b[^.\n]{0,60}?\b(?:previous|prior|above|earlier|preceding|all|any|your|system|anteriores"
    r"|previas|todas|todos|vorherigen|vorigen|alle|bisherigen|précédentes|toutes|tous)\b[^.\n]{0,30}?"
    r"\b(?:instructions?|prompts?|rules|directions|guidelines|context|messages?|instrucciones|indicaciones"
    r"|anweisungen|regeln|consignes|instruções|instrucoes|regras)\b"
)
_INJECTION_ROLE_TAG = re.compile(
    r"</?\s*(?:system|assistant|user|instructions?|ticket_data|evidence|im_start|im_end)\s*>"
)
_INJECTION_LINE = re.compile(
    r"(?m)^[ \t]*(?:#{1,3}[ \t]*(?:system|instructions?)\b|(?:system|assistant)[ \t]*:)"
)
_INJECTION_ACT = re.compile(r"act as (?:an?|the) (?:ai|assistant|system|admin|administrator|developer)\b")


def detect_injection(text: str) -> bool:
    """True when the text holds instructions aimed at an AI (prompt injection) or Slack broadcast markup."""
    low = bounded(text or "").lower()
    flat = " ".join(low.split())
    if any(phrase in flat for phrase in _INJECTION_PHRASES):
        return True
    for pos in anchors(flat, _INJECTION_VERBS):
        if _INJECTION_IGNORE.match(flat, pos) is not None:
            return True
    if "<" in low and _INJECTION_ROLE_TAG.search(low) is not None:
        return True
    if ("system" in low or "assistant" in low or "instruction" in low) and _INJECTION_LINE.search(
        low[:HEURISTIC_CHARS]
    ):
        return True
    return any(_INJECTION_ACT.match(low, pos) for pos in find_all(low, "act as"))
