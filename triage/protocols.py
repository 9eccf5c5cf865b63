"""The small protocols through which the domain talks to the outside world.

Adapters in `integrations/` implement them; tests implement them only through local fakes that
speak the real protocols, so these stay narrow on purpose.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from triage.models import Evidence, Intake, ResearchTask, Ticket, Usage

if TYPE_CHECKING:
    from triage.playbooks import Playbook

T = TypeVar("T", bound=BaseModel)


class TriageError(Exception):
    """Base class: every error here carries a message fit to show a user in one line."""


class TicketNotFound(TriageError):
    def __init__(self, ticket_id: int) -> None:
        super().__init__(f"ticket #{ticket_id} was not found")
        self.ticket_id = ticket_id


class ConfigError(TriageError):
    """A setting is missing or wrong; the message names the setting to fix."""


class SourceUnavailable(TriageError):
    """A ticket source failed after its retries (network, 5xx)."""


class LanguageModelError(TriageError):
    """The model could not be reached or returned nothing usable after retries."""


@runtime_checkable
class TicketSource(Protocol):
    async def get_ticket(self, ticket_id: int) -> Ticket:
        """Fetch a ticket with all comments, requester and organization.

        Raises TicketNotFound, ConfigError or SourceUnavailable.
        """
        ...


@runtime_checkable
class ResearchSource(Protocol):
    """One research backend. It plans its own tasks from the intake and the playbook and runs them.

    `execute` may raise; the runner turns any exception into an `error` evidence row.
    Evidence ids are assigned by the runner.
    """

    name: str

    def plan(self, intake: Intake, playbook: Playbook) -> list[ResearchTask]: ...

    async def execute(self, task: ResearchTask) -> list[Evidence]: ...


@dataclass
class ModelResult(Generic[T]):
    output: T
    usage: Usage = field(default_factory=Usage)
    model: str = ""


@runtime_checkable
class LanguageModel(Protocol):
    """Structured completion. `system` blocks are static and cacheable; `data` is untrusted ticket text."""

    async def complete(
        self,
        *,
        purpose: str,  # "intake" | "synthesis" | "followup" | "kb" …; picks the model tier
        system: list[str],
        prompt: str,
        output_type: type[T],
        max_tokens: int = 4096,
    ) -> ModelResult[T]: ...


ProgressCallback = Callable[["ProgressEvent"], Awaitable[None] | None]


class ProgressEvent(BaseModel):
    """Emitted by the engine while a triage runs (the CLI prints it, Slack updates the parent card)."""

    kind: str  # "phase" | "task_started" | "task_finished" | "done"
    phase: str = ""  # fetch | intake | research | synthesis | done
    task_key: str = ""
    source: str = ""
    description: str = ""
    status: str = ""  # evidence status for task_finished
    elapsed_ms: int = 0
    done: int = 0
    total: int = 0
