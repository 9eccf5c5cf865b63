"""Playbooks: one data file per product area (YAML), loadable from a company's own folder.

A playbook says how to recognise its area (routing keywords), where to look (GitHub repos, MCP checks
per identifier type, docs queries) and what the synthesis must address (the diagnostic checklist).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from triage.protocols import ConfigError

BUNDLED_DIR = Path(__file__).parent


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


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    product_area: str  # a ProductArea value
    title: str
    owner_team: str = ""
    routing: Routing = Field(default_factory=Routing)
    github_repos: list[str] = Field(default_factory=list)  # always searched ("owner/name")
    sdk_repos: dict[str, str] = Field(default_factory=dict)  # sdk name → repo, used when the ticket names an SDK
    mcp_checks: list[McpCheck] = Field(default_factory=list)
    docs_queries: list[str] = Field(default_factory=list)
    checklist: list[str] = Field(default_factory=list)
    questions: list[str] = Field(default_factory=list)  # what to ask the customer when info is missing
    search_terms: list[str] = Field(default_factory=list)  # extra words for GitHub query variants


def load_playbooks(directory: Path | str | None = None) -> dict[str, Playbook]:
    """Load every `*.yaml` playbook in `directory` (default: the bundled PostHog profile)."""
    folder = Path(directory) if directory else BUNDLED_DIR
    if not folder.is_dir():
        raise ConfigError(f"PLAYBOOKS_DIR {folder} is not a folder")
    books: dict[str, Playbook] = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            book = Playbook.model_validate(raw)
        except (yaml.YAMLError, ValidationError) as exc:
            first = str(exc).splitlines()[0]
            raise ConfigError(f"playbook {path.name} is invalid: {first}") from exc
        books[book.id] = book
    if not books:
        raise ConfigError(f"PLAYBOOKS_DIR {folder} holds no *.yaml playbooks")
    if "other" not in books:
        books["other"] = Playbook(id="other", product_area="other", title="Other")
    return books


@lru_cache(maxsize=4)
def bundled_playbooks() -> dict[str, Playbook]:
    return load_playbooks(BUNDLED_DIR)


def playbook_for_area(books: dict[str, Playbook], area: str) -> Playbook:
    for book in books.values():
        if book.product_area == area:
            return book
    return books.get("other") or next(iter(books.values()))
