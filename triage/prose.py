"""Model prose held to the grade: text hygiene, certainty words, facts, and what a customer may read.

Pure string functions used by grading, drafts and follow-ups. The vocabulary (certainty words, phrases
that deny an escalation, words that make a next step a statement of fact) is data:
`triage/data/grading_words.yaml`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml

from triage.links import LinkPolicy, evidence_urls
from triage.models import Confidence, Evidence, Intake, TriageReport

WORDS_FILE = Path(__file__).parent / "data" / "grading_words.yaml"

_EVIDENCE_REF = re.compile(r"\bE(\d{1,4})\b")
_SLACK_LINK = re.compile(r"<((?:https?|mailto):[^|>\s]*)\|([^>]*)>")
_SLACK_BARE_LINK = re.compile(r"<((?:https?|mailto):[^>\s]*)>")
_SLACK_USER = re.compile(r"<@([A-Z0-9]+)(?:\|([^>]*))?>")
_SLACK_CHANNEL = re.compile(r"<#([A-Z0-9]+)(?:\|([^>]*))?>")
_SLACK_SPECIAL = re.compile(r"<!([a-z^A-Z0-9_-]+)(?:\|([^>]*))?>")
_EMPTY_BRACKETS = re.compile(r"\s*[\(\[]\s*(?:,\s*)*[\)\]]")
_DANGLING_SEPARATORS = re.compile(r"([\(\[])\s*(?:,\s*)+|(?:\s*,)+\s*([\)\]])")
_VERSION = re.compile(r"(?<![\w.])v?(\d+\.\d+(?:\.\d+)*(?:-[0-9A-Za-z.]+)?)(?![\w])")
_URLISH = re.compile(r"(?i)\b(?:https?://|www\.)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_NEGATION = r"(?<!\bnot )(?<!\bnever )(?<!n't )"


# ---------------------------------------------------------------- text hygiene


def strip_slack_markup(text: str) -> str:
    """Turn Slack control sequences into plain text (links keep their label and URL)."""
    if not text or "<" not in text:
        return text
    out = _SLACK_LINK.sub(lambda m: f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1), text)
    out = _SLACK_BARE_LINK.sub(lambda m: m.group(1), out)
    out = _SLACK_USER.sub(lambda m: m.group(2) or f"user {m.group(1)}", out)
    out = _SLACK_CHANNEL.sub(lambda m: f"#{m.group(2)}" if m.group(2) else f"channel {m.group(1)}", out)
    out = _SLACK_SPECIAL.sub("", out)
    return re.sub(r"[ \t]{2,}", " ", out).strip()


def tidy(text: str) -> str:
    out = _DANGLING_SEPARATORS.sub(lambda m: m.group(1) or m.group(2) or "", text)
    out = _EMPTY_BRACKETS.sub("", out)
    out = re.sub(r"[ \t]{2,}", " ", out)
    out = re.sub(r" +([.,])", r"\1", out)  # not ";:?!" — French puts a space before those
    return out.strip()


def remove_evidence_refs(text: str, keep: Iterable[str] = ()) -> str:
    """Remove inline references like "E7" except those in `keep`."""
    allowed = set(keep)
    if not text:
        return text
    changed = False

    def repl(m: re.Match[str]) -> str:
        nonlocal changed
        if m.group(0) in allowed:
            return m.group(0)
        changed = True
        return ""

    out = _EVIDENCE_REF.sub(repl, text)
    return tidy(out) if changed else out


def inline_refs(text: str) -> list[str]:
    return [m.group(0) for m in _EVIDENCE_REF.finditer(text or "")]


# ---------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class _Rule:
    level: Confidence
    pattern: re.Pattern[str]
    replacement: dict[Confidence, str]


@dataclass(frozen=True)
class Words:
    certainty: tuple[_Rule, ...]
    denials: tuple[re.Pattern[str], ...]
    facts: tuple[re.Pattern[str], ...]


@lru_cache(maxsize=1)
def words() -> Words:
    raw = yaml.safe_load(WORDS_FILE.read_text(encoding="utf-8"))
    rules = tuple(
        _Rule(
            Confidence(item["level"]),
            re.compile(rf"{_NEGATION}\b(?:{item['pattern']})\b", re.I),
            {Confidence(k): str(v) for k, v in item.items() if k in ("likely", "suspected")},
        )
        for item in raw["certainty"]
    )
    return Words(
        certainty=rules,
        denials=tuple(re.compile(rf"\b{p}\b[.,;]?", re.I) for p in raw["escalation_denials"]),
        facts=tuple(re.compile(rf"\b{p}\b", re.I) for p in raw["fact_words"]),
    )


def _cased(original: str, replacement: str) -> str:
    return replacement[:1].upper() + replacement[1:] if original[:1].isupper() else replacement


def text_grade(report: TriageReport) -> Confidence:
    """The grade model-written text about `report` is held to: its root cause's (none → suspected)."""
    return report.root_cause.confidence if report.root_cause else Confidence.suspected


def cap_certainty(text: str, grade: Confidence) -> str:
    """Rewrite certainty words above `grade` to the grade's word ("confirmed" → "likely")."""
    if not text:
        return text
    out = text
    for rule in words().certainty:
        if rule.level.rank <= grade.rank:
            continue
        word = rule.replacement.get(grade)
        if word is None:
            continue
        out = rule.pattern.sub(lambda m, w=word: _cased(m.group(0), w), out)
    return out


def remove_escalation_denials(text: str) -> str:
    out = text
    for pattern in words().denials:
        out = pattern.sub("", out)
    return tidy(out) if out != text else out


def states_fact(text: str) -> bool:
    """Does this (uncited) line state a fact rather than an action? Versions and URLs count as facts."""
    if _VERSION.search(text) or _URLISH.search(text):
        return True
    return any(p.search(text) for p in words().facts)


# ---------------------------------------------------------------- customer-facing text


def _sentences(text: str) -> list[list[str]]:
    return [_SENTENCE_END.split(line) for line in text.split("\n")]


def drop_sentences(text: str, bad: Iterable[str] = (), versions: set[str] | None = None) -> tuple[str, int]:
    """Remove every sentence that contains one of `bad` (case-insensitive), or a version number that is
    not in `versions` (when given). Returns (text, sentences removed)."""
    needles = [b.casefold() for b in bad if b]
    if not text or (not needles and versions is None):
        return text, 0
    removed = 0
    lines: list[str] = []
    for parts in _sentences(text):
        kept: list[str] = []
        for sentence in parts:
            low = sentence.casefold()
            unknown = versions is not None and any(
                m.group(1) not in versions for m in _VERSION.finditer(sentence)
            )
            if any(n in low for n in needles) or unknown:
                removed += 1
                continue
            kept.append(sentence)
        if kept or not "".join(parts).strip():
            lines.append(" ".join(kept))
    return ("\n".join(lines).strip() if removed else text), removed


def internal_strings(evidence: Iterable[Evidence]) -> list[str]:
    """What a customer must never read: internal URLs, tool and source names, person properties."""
    out: list[str] = []
    for ev in evidence:
        for name in (ev.tool, ev.source):
            if name and len(name) >= 4 and ("_" in name or "-" in name):
                out.append(name)
        if not ev.internal:
            continue
        if ev.url:
            out.append(ev.url)
        props = ev.data.get("properties")
        if isinstance(props, dict):
            for key, value in props.items():
                if isinstance(value, str) and len(value) >= 4:
                    out += [value, f"{key}={value}", f"{key}: {value}"]
    return sorted(set(out), key=len, reverse=True)


def known_versions(intake: Intake, evidence: Iterable[Evidence]) -> set[str]:
    """Version numbers the customer reply may mention: the ticket's SDK versions and research results."""
    ids = intake.identifiers
    found = {s.version.lstrip("v") for s in ids.sdks if s.version}
    found.update(m.group(1) for text in ids.releases for m in _VERSION.finditer(text))
    for ev in evidence:
        texts = [ev.title, ev.summary]
        texts += [str(v) for v in ev.data.values() if isinstance(v, str | int | float)]
        for text in texts:
            found.update(m.group(1) for m in _VERSION.finditer(text or ""))
    return found


def sanitize_reply(text: str, evidence: Iterable[Evidence]) -> str:
    """A customer reply cites no evidence ids, no internal URLs and no Slack markup."""
    out = strip_slack_markup(text or "")
    for ev in evidence:
        if ev.internal and ev.url:
            out = out.replace(ev.url, "")
    out = remove_evidence_refs(out)
    return tidy(out) if out != text else out


# ---------------------------------------------------------------- one policing pass per audience


def internal_text(
    text: str, *, evidence: Sequence[Evidence], links: LinkPolicy, grade: Confidence | None = None
) -> tuple[str, int]:
    """Model text for engineers (report, packet, follow-up): plain text, certainty ≤ `grade`, links by
    policy. Returns (text, links removed)."""
    out = strip_slack_markup(text or "")
    if grade is not None:
        out = cap_certainty(out, grade)
    out, removed = links.police(out, evidence_urls(evidence))
    return out.strip(), removed


def customer_text(
    text: str,
    *,
    evidence: Sequence[Evidence],
    intake: Intake,
    links: LinkPolicy,
    grade: Confidence | None = None,
    model_written: bool = True,
) -> tuple[str, list[str]]:
    """Text a customer may read (reply, KB): no evidence ids, Slack markup, internal URLs, tool names or
    person properties; certainty ≤ `grade`; public links only; model-written text names no version that
    neither the ticket nor the research reported. Returns (text, what was removed, as short notes)."""
    notes: list[str] = []
    out = sanitize_reply(text or "", evidence)
    if grade is not None:
        out = cap_certainty(out, grade)
    out, removed = links.police(out, evidence_urls(evidence, public_only=True))
    if removed:
        notes.append(f"removed {removed} link(s) that are neither public evidence nor on the link allowlist")
    versions = known_versions(intake, evidence) if model_written else None
    out, dropped = drop_sentences(out, internal_strings(evidence), versions)
    if dropped:
        notes.append(
            f"removed {dropped} sentence(s) naming internal data, tools or versions no evidence reports"
        )
    return out.strip(), notes
