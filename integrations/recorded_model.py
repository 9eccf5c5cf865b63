"""`RecordedModel`: a `LanguageModel` that answers from authored responses (offline `triagebot eval`).

Each golden case carries one authored answer per purpose (`intake`, `synthesis`, `drafts`, `judge` …),
written by us in the shape the real model returns (the pydantic output types), *not* captured from a
live model — there is no network where the golden set was built. The answers are validated against the
requested output type exactly like a live answer, so a schema change shows up as a failing eval.

Evidence ids depend on how research planned the case (`E1`…`En` in plan order), so an authored answer
names the evidence it cites by URL: `"@url:https://github.com/PostHog/posthog-js/issues/1471"` in an
`evidence_ids` list is replaced by the id of the evidence row with that URL in the prompt (left as is
— and therefore dropped by grading — when research did not find it).

Usage is estimated the way the test fake does (≈ 4 characters per token, static system prefix counted as
a cache read after its first use) and priced with the real price table, so the eval's cost column shows
the order of magnitude of a live run; it is an estimate, not a bill.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from integrations.anthropic_model import price_for
from triage.models import Usage
from triage.prompting import rows_in_prompt
from triage.protocols import LanguageModelError, ModelResult

T = TypeVar("T", bound=BaseModel)

PLACEHOLDER = "@url:"


def evidence_ids_by_url(prompt: str) -> dict[str, str]:
    """`url → E-id` from the `<evidence>` rows of a synthesis/draft prompt."""
    found: dict[str, str] = {}
    for row in rows_in_prompt(prompt):
        url = row.field("url")
        if url:
            found.setdefault(url.strip(), row.id)
    return found


def _resolve(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str) and value.startswith(PLACEHOLDER):
        return ids.get(value[len(PLACEHOLDER) :], value)
    if isinstance(value, list):
        return [_resolve(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _resolve(v, ids) for k, v in value.items()}
    return value


class RecordedModel:
    """Implements `triage.protocols.LanguageModel` from `answers[purpose]`."""

    def __init__(
        self, answers: dict[str, Any], *, model: str = "claude-sonnet-5-5", intake_model: str = ""
    ) -> None:
        self.answers = answers
        self.model = model
        self.intake_model = intake_model or model
        self._seen_prefixes: set[str] = set()

    def _usage(self, model: str, system: list[str], prompt: str, output: str) -> Usage:
        prefix = "".join(system)
        cached = prefix in self._seen_prefixes
        self._seen_prefixes.add(prefix)
        tokens_prefix, tokens_in, tokens_out = len(prefix) // 4, len(prompt) // 4, max(1, len(output) // 4)
        usage = Usage(
            calls=1,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cache_read_tokens=tokens_prefix if cached else 0,
            cache_creation_tokens=0 if cached else tokens_prefix,
        )
        price = price_for(model, tokens_prefix + tokens_in)
        if price is None:
            return usage
        cost = (
            tokens_in * price.input
            + usage.cache_read_tokens * price.cache_read
            + usage.cache_creation_tokens * price.cache_write_5m
            + tokens_out * price.output
        ) / 1_000_000
        return usage.model_copy(update={"cost_usd": round(cost, 6)})

    async def complete(
        self, *, purpose: str, system: list[str], prompt: str, output_type: type[T], max_tokens: int = 4096
    ) -> ModelResult[T]:
        if purpose not in self.answers:
            raise LanguageModelError(f"no recorded answer for {purpose!r}")
        answer = _resolve(self.answers[purpose], evidence_ids_by_url(prompt))
        text = json.dumps(answer, ensure_ascii=False)
        try:
            output = output_type.model_validate(answer)
        except ValidationError as exc:
            raise LanguageModelError(
                f"recorded {purpose} answer does not match {output_type.__name__}"
            ) from exc
        model = self.intake_model if purpose == "intake" else self.model
        return ModelResult(output=output, usage=self._usage(model, system, prompt, text), model=model)
