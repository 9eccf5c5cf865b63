"""GitHub search queries from a ticket's intake: what is public goes in, what is the customer's stays out.

Public (used): code symbols (`Identifiers.code_symbols`: SDK API names such as `displaySurvey`, config
options), camelCase names and `calls()` among the symptom keywords, error class names, the words of
the symptom, and the core of an error message with the customer's values cut out.

Private (never sent): distinct ids, person ids, emails (and their domain), flag keys, custom event
names (`$`-events are PostHog's own and public), fingerprints, survey ids, the customer's URLs and
hosts (and the distinctive labels of their host names), release names, and any number from their
data (a search word with a digit in it is dropped). `Privacy.allows` is the one check every search
word passes, the model-written queries included.

Variants (`plan_queries`, `relaxed_queries`), each scoped with `(repo:A OR repo:B)` (GitHub's advanced issue search
ANDs repeated `repo:` qualifiers; the GitHub CLI groups them the same way, cli/cli
`pkg/search/query.go`):
  symbol          the most distinctive symbol alone, in the SDK's repos
  symbol_symptom  that symbol plus the two best symptom words
  error           the core of the error message, quoted
  symptom         the symptom words (topic words first, `state_words` of vocabulary.yaml last)
  pr              symbol or symptom words in pull requests (a fix PR found directly)
  semantic        the symptom as a sentence with `search_type=semantic` (github.com only)
  relaxed:N       sent only when the variants above found no exact match (every bare term must
                  match, so one word this reporter chose differently from the issue's author empties
                  a query): the symbol alone in every repo (an SDK's bug is often filed in the
                  product's repo), the second symbol alone (the "most distinctive" one is a guess),
                  the error core's words unquoted (in any order), every pair of the three best
                  symptom words and the best one with the playbook's first search term; at most five
  model:N         each model-written English query (wave 2), privacy-filtered the same way
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from urllib.parse import urlsplit

import yaml

from triage.models import Intake
from triage.playbooks import bundled_vocabulary

MAX_TEXT_CHARS = 256  # GitHub: queries longer than 256 characters (not counting qualifiers) fail
MAX_REPOS = 6  # "(repo:A OR … )" with at most five OR operators (GitHub allows five)
MAX_SYMPTOM_WORDS = 4
MAX_RELAXED = 5

_SYMBOL = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$")
_CAMEL = re.compile(r"\b[a-z]+(?:[A-Z][a-z0-9]+)+\b|\b[A-Z][a-z]+(?:[A-Z][a-z0-9]+)+\b")
_CALL = re.compile(r"\b(?:[A-Za-z_$][\w$]*\.)?([A-Za-z_$][\w$]{2,})\(")
_ERROR_CLASS = re.compile(r"\b([A-Z][A-Za-z0-9]*(?:Error|Exception))\b")
_ID_LIKE = re.compile(
    r"@|://|\\|/|[0-9a-f]{8,}|\d|\b(?:phc|phx|ghp|gho|sk|xox[a-z])[_-]|[0-9a-f]{8}-[0-9a-f]{4}-", re.I
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")
_VOCABULARY = yaml.safe_load(
    (resources.files("integrations") / "github" / "vocabulary.yaml").read_text("utf-8")
)
_STOPWORDS = frozenset(str(w).lower() for w in _VOCABULARY["stopwords"])
_GENERIC_HOST_LABELS = frozenset(str(w).lower() for w in _VOCABULARY["generic_host_labels"])
_STATE_WORDS = frozenset(str(w).lower() for w in _VOCABULARY["state_words"])
_GENERIC_ERROR_WORDS = frozenset(str(w).lower() for w in _VOCABULARY["generic_error_words"])
_HUMP = re.compile(r"[a-z0-9][A-Z]")
_ERROR_PREFIX = re.compile(r"^\s*(?:uncaught\s+(?:\(in promise\)\s*)?|error:\s*|\.)", re.I)


# ---------------------------------------------------------------- privacy


@dataclass(frozen=True)
class Privacy:
    """The customer's identifiers: no search word may be, contain or reveal one."""

    values: frozenset[str]  # whole private values, lower-cased
    labels: frozenset[str]  # distinctive parts: host labels, email local parts and domains

    @classmethod
    def of(cls, intake: Intake) -> Privacy:
        ids = intake.identifiers
        values = {
            *ids.distinct_ids,
            *ids.person_ids,
            *ids.emails,
            *ids.flag_keys,
            *ids.fingerprints,
            *ids.survey_ids,
            *ids.urls,
            *ids.hosts,
            *ids.releases,
            *(e for e in ids.event_names if not e.startswith("$")),
        }
        labels: set[str] = set()
        for email in ids.emails:
            local, _, domain = email.lower().partition("@")
            labels.add(local)
            labels |= _host_labels(domain)
        for url in ids.urls:
            try:
                labels |= _host_labels(urlsplit(url if "://" in url else f"//{url}").hostname or "")
            except ValueError:
                continue
        for host in ids.hosts:
            labels |= _host_labels(host)
        return cls(frozenset(v.lower() for v in values if v), frozenset(x for x in labels if len(x) >= 3))

    def allows(self, word: str) -> bool:
        """May this one search word (a symbol, a word of a phrase) go to GitHub?"""
        low = word.lower().strip()
        if not low or _ID_LIKE.search(low):
            return False
        if low in self.values or low in self.labels:
            return False
        if any(len(v) >= 3 and v in low for v in self.values | self.labels):
            return False
        # a piece of an identifier ("checkout_v2" of "new-checkout_v2") is private too; plain words are not
        plain = low.replace("'", "").isalpha()
        return plain or not any(low in v for v in self.values)

    def clean(self, text: str) -> str:
        """`text` with every word this filter refuses removed (for model-written sentences)."""
        kept = [w for w in text.split() if self.allows(w.strip("\"'`.,;:!?()[]{}<>"))]
        return " ".join(w.strip("\"'`()[]{}<>") for w in kept).strip()


def _host_labels(host: str) -> set[str]:
    return {label for label in host.lower().split(".") if label and label not in _GENERIC_HOST_LABELS}


# ---------------------------------------------------------------- terms


@dataclass
class SearchTerms:
    symbols: list[str] = field(default_factory=list)  # most distinctive first
    symptoms: list[str] = field(default_factory=list)  # symptom words, best first
    error_core: str = ""  # the core of the first usable error message
    area: list[str] = field(default_factory=list)  # the playbook's generic search terms
    model_queries: list[str] = field(default_factory=list)  # privacy-filtered model queries

    @property
    def searchable(self) -> bool:
        return bool(self.symbols or self.symptoms or self.error_core or self.model_queries)


def _unique(items: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for item in items:
        key = item.lower()
        if item and key not in seen:
            seen.add(key)
            out.append(item)
    return out


def _symbol(raw: str) -> str:
    text = raw.strip().strip("`'\"").removesuffix("()").removesuffix(";")
    text = re.sub(r"^(?:window\.)?posthog\.", "", text)
    return text if _SYMBOL.match(text) and 3 <= len(text) <= 60 else ""


def _distinctiveness(symbol: str, error_words: set[str]) -> tuple[bool, int, int]:
    """Named in the error message first (the failing API), then camel humps (`toolbarJSON` has one,
    not four), dots and underscores, then length."""
    named = symbol.lower().split(".")[-1] in error_words
    humps = len(_HUMP.findall(symbol)) + symbol.count(".") + symbol.count("_")
    return (named, min(humps, 3), len(symbol))


def extract_terms(intake: Intake, area_terms: Sequence[str] = ()) -> SearchTerms:
    """The public search words of this intake (module docstring)."""
    privacy = Privacy.of(intake)
    ids = intake.identifiers
    candidates: list[str] = [_symbol(s) for s in ids.code_symbols]
    for keyword in intake.symptom_keywords:
        candidates += [_symbol(m) for m in _CAMEL.findall(keyword)]
        candidates += [_symbol(m) for m in _CALL.findall(keyword)]
        if " " not in keyword.strip() and any(ch.isupper() for ch in keyword.strip()[1:]):
            candidates.append(_symbol(keyword))
    for message in ids.error_messages:
        candidates += [_symbol(m) for m in _ERROR_CLASS.findall(message) if m not in ("Error", "Exception")]
    generic = {g.lower() for g in bundled_vocabulary().generic_symbols}
    symbols = [
        s
        for s in _unique(candidates)
        if s and s.lower() not in generic and all(privacy.allows(p) for p in s.split("."))
    ]
    error_words = {w.lower() for m in ids.error_messages for w in re.findall(r"[\w$]+", m)}
    symbols.sort(key=lambda s: _distinctiveness(s, error_words), reverse=True)
    symbol_words = {s.lower() for s in symbols} | {p.lower() for s in symbols for p in s.split(".")}

    sdk_names = {s.name.lower() for s in ids.sdks} | {"posthog-js", "posthog"}
    words: list[str] = []
    for keyword in intake.symptom_keywords:
        for word in _WORD.findall(keyword.replace("\u2019", "'")):
            low = word.lower()
            if (
                len(low) < 3
                or low in _STOPWORDS
                or low in symbol_words
                or low in sdk_names
                or not privacy.allows(word)
            ):
                continue
            words.append(low)
    area = [t for t in area_terms if t and all(privacy.allows(w) for w in t.split())]
    # topic words (what the issue is about) before state words (how this reporter says it broke)
    symptoms = sorted(_unique(words), key=lambda w: w in _STATE_WORDS)[:MAX_SYMPTOM_WORDS]

    error_core = ""
    for message in ids.error_messages:
        error_core = core_of_error(message, privacy, symbols)
        if error_core:
            break

    model = []
    for query in intake.search_queries:
        cleaned = privacy.clean(query)
        if len(cleaned.split()) >= 2:
            model.append(cleaned)
    return SearchTerms(symbols[:3], symptoms, error_core, area, _unique(model)[:4])


def core_of_error(message: str, privacy: Privacy, symbols: Sequence[str] = ()) -> str:
    """The longest run of clean words of an error message (3–8 words): customer values cut out.

    A word is clean when the privacy filter allows it, has no digit, and is not quoted (customers'
    values are usually quoted in error messages) unless it is one of the ticket's public `symbols`
    (`Cannot read property 'getDistinctId' of undefined` names the SDK's method). Code words such as
    `posthog.loadToolbar` are kept. A core that says nothing distinctive (no code word and fewer than
    two words outside `generic_error_words`: "is not a function", "TypeError Cannot read property")
    is no core: that phrase is in thousands of unrelated issues.
    "TypeError: posthog.loadToolbar is not a function" → "TypeError posthog.loadToolbar is not a function";
    "TypeError: Cannot read properties of undefined (reading 'x')" → "" (generic words only).
    """
    public = {s.lower() for s in symbols} | {s.lower().split(".")[-1] for s in symbols}
    text = _ERROR_PREFIX.sub("", message.strip().splitlines()[0] if message.strip() else "")
    runs: list[list[str]] = [[]]
    for raw in text.split():
        quoted = raw[:1] in "'\"`" or (raw[-1:] in "'\"`" and not raw.endswith("'s"))
        word = raw.strip("\"'`.,;:!?()[]{}<>")
        code = _SYMBOL.match(word) is not None and not re.fullmatch(r"[A-Za-z][a-z'-]*", word)
        plain = re.fullmatch(r"[A-Za-z][A-Za-z'-]*", word) is not None
        clean = bool(word) and (plain or code) and privacy.allows(word)
        if not clean or (quoted and word.lower() not in public):
            runs.append([])
            continue
        runs[-1].append(word)
    best = max((run for run in runs if _distinctive(run)), key=len, default=[])
    return " ".join(best[:8]) if len(best) >= 3 else ""


def _distinctive(run: list[str]) -> bool:
    """A code word that is not a built-in error class (camelCase, dotted, snake_case), or two words
    outside the stopwords and `generic_error_words`."""
    words = [w for w in run[:8] if w.lower() not in _GENERIC_ERROR_WORDS]
    if any(not re.fullmatch(r"[A-Za-z][a-z'-]*", w) for w in words):
        return True
    return sum(1 for w in words if w.lower() not in _STOPWORDS and len(w) >= 3) >= 2


# ---------------------------------------------------------------- queries


@dataclass(frozen=True)
class Query:
    variant: str
    q: str
    search_type: str = ""  # "" = lexical (GitHub's default); "semantic"


def repo_scope(repos: Sequence[str]) -> str:
    """`repo:A` or `(repo:A OR repo:B)`: repeated repo: qualifiers would be AND-ed (nothing matches)."""
    names = _unique([r for r in repos if r])[:MAX_REPOS]
    if not names:
        return ""
    parts = [f"repo:{r}" for r in names]
    return parts[0] if len(parts) == 1 else f"({' OR '.join(parts)})"


def _fmt(term: str) -> str:
    """A term as plain search text: GitHub's query syntax inside it is defused.

    `word:value` would be read as a qualifier (an unknown one matches nothing), a leading `-` negates,
    upper-case AND/OR/NOT are operators, and quotes and parentheses group; a model-written query may
    hold any of them.
    """
    words = [w.lstrip("-") for w in re.sub(r"[:\"()]", " ", term).split()]
    words = [w.lower() if w in ("AND", "OR", "NOT") else w for w in words if w]
    text = " ".join(words)
    return f'"{text}"' if " " in text else text


def build_query(terms: Sequence[str], repos: Sequence[str], kind: str = "issue") -> str:
    """Terms + `(repo:… OR …) is:<kind>`; trailing terms are dropped until the text fits 256 chars."""
    quals = " ".join(x for x in (repo_scope(repos), f"is:{kind}") if x)
    kept = [f for f in (_fmt(t) for t in terms) if f]
    while kept and len(" ".join(kept)) > MAX_TEXT_CHARS:
        kept.pop()
    return f"{' '.join(kept)} {quals}".strip() if kept else ""


def plan_queries(
    terms: SearchTerms, sdk_repos: Sequence[str], all_repos: Sequence[str], *, semantic: bool
) -> list[Query]:
    """The rules-based variants (module docstring), without duplicates; no terms → no queries."""
    out: list[Query] = []
    sdk_scope = list(sdk_repos) or list(all_repos)
    symbol = terms.symbols[0] if terms.symbols else ""
    if symbol:
        out.append(Query("symbol", build_query([symbol], sdk_scope)))
        if terms.symptoms:
            out.append(Query("symbol_symptom", build_query([symbol, *terms.symptoms[:2]], all_repos)))
    if terms.error_core:
        out.append(Query("error", build_query([terms.error_core], all_repos)))
    if len(terms.symptoms) >= 2 or (terms.symptoms and not symbol):
        words = terms.symptoms[:3]
        if len(words) < 2 and terms.area:
            words = _unique([*words, terms.area[0]])
        out.append(Query("symptom", build_query(words, all_repos)))
    pr_words = [symbol] if symbol else terms.symptoms[:2]
    if pr_words and (symbol or len(pr_words) >= 2):
        out.append(Query("pr", build_query(pr_words, all_repos, kind="pr")))
    if semantic and (symbol or terms.symptoms):
        sentence = " ".join(_unique([*([symbol] if symbol else []), *terms.symptoms, *terms.area[:1]]))
        if len(sentence.split()) >= 2:  # free text as plain words: semantic search strips quotes
            quals = " ".join(x for x in (repo_scope(all_repos), "is:issue") if x)
            out.append(Query("semantic", f"{sentence[:MAX_TEXT_CHARS]} {quals}".strip(), "semantic"))
    return _dedupe(out)


def relaxed_queries(
    terms: SearchTerms, sdk_repos: Sequence[str], all_repos: Sequence[str], sent: Sequence[Query] = ()
) -> list[Query]:
    """The second-round queries (module docstring), minus what `sent` already asked."""
    out: list[Query] = []
    if terms.symbols and list(sdk_repos) and list(sdk_repos) != list(all_repos):
        out.append(Query("relaxed", build_query(terms.symbols[:1], all_repos)))
    if len(terms.symbols) >= 2:
        out.append(Query("relaxed", build_query(terms.symbols[1:2], all_repos)))
    if terms.error_core:
        out.append(Query("relaxed", build_query(terms.error_core.split(), all_repos)))
    words = terms.symptoms[:3]
    pairs = [[a, b] for i, a in enumerate(words) for b in words[i + 1 :]]
    area = [t for t in terms.area[:1] if words and words[0] not in t.lower().split()]
    if area:  # the best word in the product area's own words, second after the best pair
        pairs.insert(1, [words[0], area[0]])
    out += [Query("relaxed", build_query(pair, all_repos)) for pair in pairs]
    asked = {q.q for q in sent}
    fresh = [q for q in _dedupe(out) if q.q not in asked][:MAX_RELAXED]
    return [Query(f"relaxed:{i + 1}", q.q) for i, q in enumerate(fresh)]


def model_queries(terms: SearchTerms, all_repos: Sequence[str]) -> list[Query]:
    """The model-written English queries (already privacy-filtered), one lexical search each."""
    return _dedupe(
        [
            Query(f"model:{i + 1}", build_query(q.split(), all_repos))
            for i, q in enumerate(terms.model_queries)
        ]
    )


def _dedupe(queries: list[Query]) -> list[Query]:
    seen: set[tuple[str, str]] = set()
    out = []
    for query in queries:
        key = (query.q, query.search_type)
        if query.q and key not in seen:
            seen.add(key)
            out.append(query)
    return out
