"""Playbooks: one data file per product area (YAML), loadable from a company's own folder.

A product area *is* a playbook: its id is the area id, its `label` the name people see. A playbook says
how to recognise its area (routing keywords), where to look (GitHub repos, MCP checks per identifier
type, docs queries) and what the synthesis must address (the diagnostic checklist). Another company
defines its own areas by writing its own files; no area is named in Python except the fallback "other".

Files whose name starts with "_" are not playbooks: `_sdks.yaml` is the SDK catalogue (which words
reveal which SDK, its registry package and repository), loaded by `load_sdk_catalogue`; `_vocabulary.yaml`
says which words are events, properties, config options and error phrases (`load_vocabulary`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triage.models import IssueType
from triage.protocols import ConfigError

BUNDLED_DIR = Path(__file__).parent
OTHER_AREA = "other"  # the fallback area: tickets no playbook claims (always present)


class McpCheck(BaseModel):
    """Run MCP capability `capability` once per identifier of type `identifier` (or once if None)."""

    model_config = ConfigDict(extra="forbid")
    capability: str  # e.g. "flag_definition", "person_by_distinct_id", "docs_search"
    identifier: str | None = None  # an Identifiers field name ("flag_keys", "distinct_ids"…), None = once
    description: str = ""
    limit: int = 3  # at most this many identifiers of that type


class Routing(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # phrase → weight; phrases are matched case-insensitively on word boundaries
    keywords: dict[str, float] = Field(default_factory=dict)
    # identifier types whose presence adds weight (e.g. flag_keys: 2.0)
    identifiers: dict[str, float] = Field(default_factory=dict)
    # the issue type tickets of this area lean to ("account" for billing)
    issue_type: IssueType | None = None


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str  # the product area id (Intake.product_area)
    title: str
    label: str = ""  # short area name shown in reports; the title when empty
    owner_team: str = ""
    routing: Routing = Field(default_factory=Routing)
    github_repos: list[str] = Field(default_factory=list)  # always searched ("owner/name")
    sdk_repos: dict[str, str] = Field(
        default_factory=dict
    )  # sdk name → repo, used when the ticket names an SDK
    mcp_checks: list[McpCheck] = Field(default_factory=list)
    docs_queries: list[str] = Field(default_factory=list)
    checklist: list[str] = Field(default_factory=list)
    questions: list[str] = Field(default_factory=list)  # what to ask the customer when info is missing
    search_terms: list[str] = Field(default_factory=list)  # extra words for GitHub query variants
    # what a ticket of this area should contain: requirement → the human line put in Intake.missing_info.
    # A requirement is an Identifiers field name ("flag_keys"), "sdk", "sdk_version" or "timeframe";
    # alternatives are joined with "|" ("distinct_ids|emails" is met by either).
    required_info: dict[str, str] = Field(default_factory=dict)

    @property
    def area_label(self) -> str:
        return self.label or self.title


class SdkSpec(BaseModel):
    """One SDK of the catalogue (`_sdks.yaml`): the words that reveal it and where it lives."""

    model_config = ConfigDict(extra="forbid")
    name: str  # canonical name, e.g. "posthog-js"
    aliases: list[str] = Field(default_factory=list)  # phrases that name it in a ticket (case-insensitive)
    registry: Literal["npm", "pypi"] | None = None
    package: str | None = None  # the registry package name ("posthog" on PyPI for posthog-python)
    repo: str = ""  # "owner/name": where the SDK lives now
    # every other repository that holds this SDK's issues (legacy repos, a monorepo's old home…);
    # GitHub search looks in `repo` and all of these
    repos: list[str] = Field(default_factory=list)
    platform: str = ""  # web | server | mobile (informative)
    # phrases that imply this SDK when the ticket names none ("on Android", "Flutter app"); ignored
    # when one of `platform_unless` is in the ticket too ("on Android" in Chrome is the web SDK)
    platform_words: list[str] = Field(default_factory=list)
    platform_unless: list[str] = Field(default_factory=list)
    # `$lib` values its events carry besides its name (a pasted event with "$lib": "web" is posthog-js)
    lib_values: list[str] = Field(default_factory=list)
    # names a lock file lists it under with the version in brackets (Podfile.lock: "- PostHog (3.19.0)")
    lock_names: list[str] = Field(default_factory=list)

    def all_repos(self) -> list[str]:
        """`repo` first, then `repos`, without duplicates."""
        seen: dict[str, str] = {}
        for name in [self.repo, *self.repos]:
            if name:
                seen.setdefault(name.lower(), name)
        return list(seen.values())

    def phrases(self) -> list[str]:
        """The canonical name and every alias, longest first, without duplicates."""
        seen: dict[str, None] = {}
        for phrase in [self.name, *self.aliases]:
            key = phrase.strip().lower()
            if key:
                seen.setdefault(key, None)
        return sorted(seen, key=len, reverse=True)


def load_playbooks(directory: Path | str | None = None) -> dict[str, Playbook]:
    """Load every `*.yaml` playbook in `directory` (default: the bundled PostHog profile)."""
    folder = Path(directory) if directory else BUNDLED_DIR
    if not folder.is_dir():
        raise ConfigError(f"PLAYBOOKS_DIR {folder} is not a folder")
    books: dict[str, Playbook] = {}
    for path in sorted(folder.glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            book = Playbook.model_validate(raw)
        except (yaml.YAMLError, ValidationError) as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(f"playbook {path.name} is invalid: {first}") from exc
        books[book.id] = book
    if not books:
        raise ConfigError(f"PLAYBOOKS_DIR {folder} holds no *.yaml playbooks")
    if OTHER_AREA not in books:
        books[OTHER_AREA] = Playbook(id=OTHER_AREA, title="Other")
    return books


@lru_cache(maxsize=4)
def bundled_playbooks() -> dict[str, Playbook]:
    return load_playbooks(BUNDLED_DIR)


def playbook_for_area(books: Mapping[str, Playbook], area: str) -> Playbook:
    """The playbook of a product area (its id), else the fallback "other" playbook."""
    return books.get(area) or books.get(OTHER_AREA) or next(iter(books.values()))


SDK_CATALOGUE_FILE = "_sdks.yaml"


def load_sdk_catalogue(directory: Path | str | None = None) -> list[SdkSpec]:
    """Load the SDK catalogue (`_sdks.yaml`) from `directory`, else the bundled one.

    A company's PLAYBOOKS_DIR may carry its own `_sdks.yaml`; when it has none the bundled PostHog
    catalogue is used, so custom playbooks still recognise SDKs.
    """
    folder = Path(directory) if directory else BUNDLED_DIR
    path = folder / SDK_CATALOGUE_FILE
    if not path.is_file():
        path = BUNDLED_DIR / SDK_CATALOGUE_FILE
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        items = raw.get("sdks", []) if isinstance(raw, dict) else raw
        specs = [SdkSpec.model_validate(item) for item in items or []]
    except (yaml.YAMLError, ValidationError, AttributeError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"SDK catalogue {path} is invalid: {first}") from exc
    names = [spec.name for spec in specs]
    if len(names) != len(set(names)):
        raise ConfigError(f"SDK catalogue {path} names an SDK twice")
    return specs


def implied_sdks(text: str, catalogue: Sequence[SdkSpec]) -> list[SdkSpec]:
    """SDKs the ticket's platform words imply ("on Android", "iOS app", "Next.js", "Flutter").

    For tickets that name no SDK. A spec whose `platform_unless` words are in the text too is skipped:
    "the survey does not show on Android in Chrome" is the web SDK, not the Android one.
    """
    low = text.lower()

    def has(phrase: str) -> bool:
        phrase = phrase.lower()
        if phrase not in low:  # cheap literal test first: the look-behind pattern scans without a prefix
            return False
        return re.search(rf"(?<![\w.-]){re.escape(phrase)}(?![\w-])", low) is not None

    return [
        spec
        for spec in catalogue
        if any(has(w) for w in spec.platform_words) and not any(has(w) for w in spec.platform_unless)
    ]


@lru_cache(maxsize=1)
def bundled_sdk_catalogue() -> tuple[SdkSpec, ...]:
    return tuple(load_sdk_catalogue(BUNDLED_DIR))


VOCABULARY_FILE = "_vocabulary.yaml"


class Vocabulary(BaseModel):
    """The intake's word lists of a profile (`_vocabulary.yaml`); see the bundled file for each list."""

    model_config = ConfigDict(extra="forbid")
    known_events: list[str] = Field(default_factory=list)  # the product's own `$`-events
    not_events: list[str] = Field(default_factory=list)  # `$`-properties and operations, never events
    not_identifiers: list[str] = Field(default_factory=list)  # never an event, flag key or customer symbol
    config_options: list[str] = Field(default_factory=list)  # SDK options: public code symbols
    generic_symbols: list[str] = Field(default_factory=list)  # language built-ins: never code symbols
    error_phrases: list[str] = Field(default_factory=list)  # messages printed without an "XxxError:" prefix


def load_vocabulary(directory: Path | str | None = None) -> Vocabulary:
    """Load `_vocabulary.yaml` from `directory`, else the bundled one (like the SDK catalogue)."""
    folder = Path(directory) if directory else BUNDLED_DIR
    path = folder / VOCABULARY_FILE
    if not path.is_file():
        path = BUNDLED_DIR / VOCABULARY_FILE
    try:
        return Vocabulary.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except (yaml.YAMLError, ValidationError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(f"vocabulary {path} is invalid: {first}") from exc


@lru_cache(maxsize=1)
def bundled_vocabulary() -> Vocabulary:
    return load_vocabulary(BUNDLED_DIR)
