"""The domain models: the spine of the program.

Everything that crosses a boundary (ticket source → intake → research → synthesis → delivery → store)
is one of these pydantic v2 models. Nothing here knows about Slack, Zendesk or any SDK.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

REPORT_VERSION = 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# ---------------------------------------------------------------- tickets

PASTED_PREFIX = "pasted-"


def pasted_ticket_id(key: str) -> int:
    """The synthetic id of a pasted ticket (CLI text or file, a Slack message): NEGATIVE, from a hash of `key`.

    Zendesk ticket ids are positive, so a negative id can never collide with one, and the same key
    (the same pasted text, the same Slack message) maps to the same id, so it finds its earlier run.
    48 bits of SHA-256: fits a BIGINT and a JSON number.
    """
    return -(int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16) or 1)


def is_pasted(ticket_id: int) -> bool:
    return ticket_id < 0


def ticket_ref(ticket_id: int) -> str:
    """How a ticket is named to people: `#48291` for Zendesk, `pasted-0123456789ab` for a pasted one."""
    return f"{PASTED_PREFIX}{-ticket_id:012x}" if is_pasted(ticket_id) else f"#{ticket_id}"


class AuthorRole(StrEnum):
    customer = "customer"
    agent = "agent"
    system = "system"


class Person(_Model):
    id: int | None = None
    name: str = ""
    email: str = ""
    role: str = ""  # the source system's role ("end-user", "agent", "admin")


class Organization(_Model):
    id: int | None = None
    name: str = ""
    tags: list[str] = Field(default_factory=list)
    details: str = ""


class Comment(_Model):
    id: int | None = None
    author_id: int | None = None
    author_name: str = ""
    author_role: AuthorRole = AuthorRole.customer
    public: bool = True
    body: str = ""
    created_at: datetime | None = None
    attachments: list[str] = Field(default_factory=list)  # file names


class Ticket(_Model):
    id: int
    url: str = ""  # the agent-facing link (not the API URL)
    subject: str = ""
    description: str = ""
    status: str = "new"
    priority: str | None = None
    type: str | None = None
    tags: list[str] = Field(default_factory=list)
    requester: Person = Field(default_factory=Person)
    organization: Organization | None = None
    comments: list[Comment] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    group_id: int | None = None
    brand_id: int | None = None
    ticket_form_id: int | None = None
    via_channel: str | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    # Set by `triage.redaction.Redactor.redact_ticket` (never serialised): the copy is redacted, and the
    # requester's raw email when the ticket text names it (for the person look-up inside the adapter only).
    _redacted: bool = PrivateAttr(default=False)
    _requester_lookup: str = PrivateAttr(default="")

    @property
    def redacted(self) -> bool:
        return self._redacted

    @property
    def requester_lookup(self) -> str:
        return self._requester_lookup

    def mark_redacted(self, requester_lookup: str) -> None:
        self._redacted = True
        self._requester_lookup = requester_lookup

    @property
    def ref(self) -> str:
        return ticket_ref(self.id)

    @property
    def version_key(self) -> str:
        """What makes one state of a ticket distinct (used for claim-once)."""
        return self.updated_at.isoformat() if self.updated_at else "v0"


class TicketSummary(_Model):
    """The part of a ticket a report carries (no comment bodies)."""

    id: int
    url: str = ""
    subject: str = ""
    status: str = ""
    priority: str | None = None
    organization: str = ""
    requester: str = ""
    updated_at: datetime | None = None

    @property
    def ref(self) -> str:
        return ticket_ref(self.id)

    @classmethod
    def of(cls, ticket: Ticket) -> TicketSummary:
        return cls(
            id=ticket.id,
            url=ticket.url,
            subject=ticket.subject,
            status=ticket.status,
            priority=ticket.priority,
            organization=ticket.organization.name if ticket.organization else "",
            requester=ticket.requester.name,
            updated_at=ticket.updated_at,
        )


# ---------------------------------------------------------------- intake


class IssueType(StrEnum):
    bug = "bug"
    how_to = "how_to"
    feature_request = "feature_request"
    account = "account"
    integration = "integration"
    data = "data"
    performance = "performance"
    unknown = "unknown"


class Urgency(StrEnum):
    p1 = "P1"
    p2 = "P2"
    p3 = "P3"
    p4 = "P4"


class BlastRadius(StrEnum):
    single_user = "single_user"
    some_users = "some_users"
    all_users = "all_users"
    unknown = "unknown"


class Sdk(_Model):
    name: str  # canonical name, e.g. "posthog-js"
    version: str | None = None
    package: str | None = None  # registry package name, e.g. "posthog-js" / "posthog" (PyPI)
    registry: str | None = None  # "npm" | "pypi" | None
    implied: bool = False  # not named: implied by platform words ("on Android", "Next.js")


class Identifiers(_Model):
    distinct_ids: list[str] = Field(default_factory=list)
    person_ids: list[str] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)
    event_names: list[str] = Field(default_factory=list)
    flag_keys: list[str] = Field(default_factory=list)
    error_messages: list[str] = Field(default_factory=list)
    fingerprints: list[str] = Field(default_factory=list)
    survey_ids: list[str] = Field(default_factory=list)
    urls: list[str] = Field(default_factory=list)
    hosts: list[str] = Field(default_factory=list)
    releases: list[str] = Field(default_factory=list)
    dates: list[str] = Field(default_factory=list)
    sdks: list[Sdk] = Field(default_factory=list)
    # Public code symbols (SDK API names such as `displaySurvey`, config options, error class names): search words,
    # never treated as customer identifiers.
    code_symbols: list[str] = Field(default_factory=list)

    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in type(self).model_fields)


class Intake(_Model):
    product_area: str = "other"  # a playbook id: the playbooks define the areas
    area_scores: dict[str, float] = Field(default_factory=dict)
    issue_type: IssueType = IssueType.unknown
    urgency: Urgency = Urgency.p3
    blast_radius: BlastRadius = BlastRadius.unknown
    timeframe: str = ""
    language: str = "en"
    identifiers: Identifiers = Field(default_factory=Identifiers)
    symptom_keywords: list[str] = Field(default_factory=list)
    missing_info: list[str] = Field(default_factory=list)
    injection_suspected: bool = False
    playbook_id: str = "other"
    refined_by_model: bool = False
    # Short English search queries written by the intake model (already privacy-filtered); wave-2 research.
    search_queries: list[str] = Field(default_factory=list)
    # Person look-ups are scoped to the ticket's requester: their email (from the ticket record, never from
    # ticket text) and the distinct/person ids written in their own messages. Other people named in a
    # ticket are never looked up. Filled by `triage.requester.requester_scope`.
    requester_email: str = ""
    requester_ids: list[str] = Field(default_factory=list)
    # The ticket's organization from the ticket record (id and name), for per-customer routing such as
    # POSTHOG_ORG_PROJECTS. Never taken from ticket text.
    organization_refs: list[str] = Field(default_factory=list)


# ---------------------------------------------------------------- research


class EvidenceStatus(StrEnum):
    ok = "ok"
    empty = "empty"
    error = "error"
    timeout = "timeout"
    refused = "refused"
    rate_limited = "rate_limited"  # the source said "too many requests" and one wait did not clear it

    @property
    def failed(self) -> bool:
        return self in (
            EvidenceStatus.error,
            EvidenceStatus.timeout,
            EvidenceStatus.refused,
            EvidenceStatus.rate_limited,
        )


class ResearchTask(_Model):
    """One query of a research plan. `source` names the ResearchSource that runs it."""

    key: str  # unique within a plan, e.g. "github:posthog-js:symptom"
    source: str  # "posthog_mcp", "github", "registry", "docs", or an extra MCP server name
    tool: str  # MCP tool name, "search_issues", "npm_latest" …
    arguments: dict[str, Any] = Field(default_factory=dict)
    description: str = ""  # one human line: what this task checks
    first_party: bool = False  # the product's own data about this customer


class Evidence(_Model):
    id: str = ""  # "E1"… assigned by the runner in plan order
    task_key: str = ""
    source: str
    tool: str = ""
    query: str = ""  # tool arguments or search query, as text (never ticket text beyond identifiers)
    # The ticket identifier this row looked up, as "kind:value" (e.g. "flag_key:new-checkout",
    # "person:<requester>", "error_issue:<id>", "survey:<id>", "session:<id>", "sdk:posthog-js@1.2.3").
    # Empty for rows about nothing of this customer's (docs, GitHub search, registry latest).
    # Grading uses it: only a first-party data row whose subject is an identifier of this ticket confirms.
    subject: str = ""
    status: EvidenceStatus
    title: str = ""
    summary: str = ""
    url: str | None = None
    excerpt: str = ""
    latency_ms: int = 0
    first_party: bool = False
    internal: bool = False  # must never be quoted to the customer
    data: dict[str, Any] = Field(default_factory=dict)  # structured facts (issue state, fixed_in, versions…)


class SourceStatus(_Model):
    source: str
    status: EvidenceStatus
    count: int = 0  # evidence rows
    ok: int = 0
    failed: int = 0
    latency_ms: int = 0  # slowest task of this source


# ---------------------------------------------------------------- report


class Confidence(StrEnum):
    confirmed = "confirmed"
    likely = "likely"
    suspected = "suspected"

    @property
    def label(self) -> str:
        return {
            Confidence.confirmed: "Confirmed by data",
            Confidence.likely: "Likely (pattern match)",
            Confidence.suspected: "Suspected (needs a human)",
        }[self]

    @property
    def rank(self) -> int:
        return {Confidence.suspected: 0, Confidence.likely: 1, Confidence.confirmed: 2}[self]


class Finding(_Model):
    statement: str
    confidence: Confidence = Confidence.suspected
    evidence_ids: list[str] = Field(default_factory=list)


class KnownBug(_Model):
    issue_url: str
    title: str = ""
    state: str = ""  # open / closed
    fix_pr_url: str | None = None
    fix_merged: bool = False
    fixed_in: str | None = None
    exact_match: bool = False
    match_reason: str = ""  # the model's explanation of why the chosen row matches (prose, graded)
    evidence_ids: list[str] = Field(default_factory=list)


class Escalation(_Model):
    needed: bool = False
    reason: str = ""
    team: str = ""
    urgency: Urgency = Urgency.p3


class Timings(_Model):
    fetch_ms: int = 0
    intake_ms: int = 0
    research_ms: int = 0
    synthesis_ms: int = 0
    total_ms: int = 0


class Usage(_Model):
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, other: Usage) -> Usage:
        return Usage(
            calls=self.calls + other.calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_creation_tokens=self.cache_creation_tokens + other.cache_creation_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 6),
        )


class ReportMode(StrEnum):
    llm = "llm"
    evidence_only = "evidence_only"


class TriageReport(_Model):
    version: int = REPORT_VERSION
    run_id: str = ""
    ticket: TicketSummary
    created_at: datetime = Field(default_factory=utcnow)
    mode: ReportMode = ReportMode.evidence_only
    summary: str = ""
    product_area: str = "other"  # a playbook id
    product_area_label: str = ""  # the playbook's label; derived from the id when empty (older reports)
    intake: Intake = Field(default_factory=Intake)
    evidence: list[Evidence] = Field(default_factory=list)
    root_cause: Finding | None = None
    known_bug: KnownBug | None = None
    findings: list[Finding] = Field(default_factory=list)
    ruled_out: list[str] = Field(default_factory=list)
    next_steps: list[str] = Field(default_factory=list)
    checklist: list[str] = Field(default_factory=list)
    questions_for_customer: list[str] = Field(default_factory=list)
    customer_reply_draft: str = ""
    escalation: Escalation = Field(default_factory=Escalation)
    sources: list[SourceStatus] = Field(default_factory=list)
    timings: Timings = Field(default_factory=Timings)
    usage: Usage = Field(default_factory=Usage)
    grading_notes: list[str] = Field(default_factory=list)
    degraded_reason: str = ""  # why the report is evidence-only / degraded, in one line

    @model_validator(mode="after")
    def _label_the_area(self) -> TriageReport:
        if not self.product_area_label:
            self.product_area_label = self.product_area.replace("_", " ").capitalize()
        return self

    def evidence_by_id(self) -> dict[str, Evidence]:
        return {e.id: e for e in self.evidence}

    @property
    def confidence(self) -> Confidence | None:
        return self.root_cause.confidence if self.root_cause else None


# ---------------------------------------------------------------- drafts


class EscalationPacket(_Model):
    ticket: TicketSummary
    title: str
    summary: str
    impact: str
    environment: list[str] = Field(default_factory=list)
    reproduction_steps: list[str] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    ruled_out: list[str] = Field(default_factory=list)
    suspected_component: str = ""
    owner_team: str = ""
    urgency: Urgency = Urgency.p3
    root_cause: Finding | None = None
    known_bug: KnownBug | None = None


class KbArticle(_Model):
    title: str
    problem: str
    symptoms: list[str] = Field(default_factory=list)
    cause: str = ""
    resolution_steps: list[str] = Field(default_factory=list)
    affected_versions: str = ""
    related_links: list[str] = Field(default_factory=list)


class ReplyDraft(_Model):
    language: str = "en"
    body: str


class FollowUpAnswer(_Model):
    answer: str
    evidence_ids: list[str] = Field(default_factory=list)
    extra_evidence: list[Evidence] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
