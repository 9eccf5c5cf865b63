"""Benchmark: static-prefix prompt-cache hit rate and cost over a burst of triages.

Runs N triages of the bundled example tickets (cycled) through the production wiring
(`build_services` with the recorded sources, `MeteredModel` recording into a SQLite store) and the real
`AnthropicModel` against the fake Messages API (`tests/fakes/anthropic.py`). The fake does the
cache accounting the real API does for a `cache_control` breakpoint: the first request with a given
model + system prefix writes it (`cache_creation_input_tokens`), later ones read it
(`cache_read_input_tokens`); tokens are estimated as characters / 4. The fake has no minimum cacheable
length and no 5-minute expiry, so this measures how much of our prompt is a *stable* prefix, not what a
live model will bill — check `triagebot stats` against the real API for that.

Prints per purpose (intake, synthesis): calls, prompt tokens, cache-read share, and the cost per triage
with caching on and off (`TRIAGE_PROMPT_CACHING=false`).

    .venv/bin/python bench/cache_hit_rate.py [--triages 40] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from bot.settings import Settings
from bot.wiring import BundledTicketSource, build_services, replay_sources
from integrations.anthropic_model import AnthropicModel
from integrations.store_schema import model_calls
from tests.fakes.anthropic import FakeAnthropic
from triage.intake import IntakeRefinement
from triage.synthesis import SynthesisOutput


def answer(body: dict[str, Any]) -> dict[str, Any]:
    """A valid answer for whichever output the request asks for (intake refinement or synthesis)."""
    props = ((body.get("output_config") or {}).get("format") or {}).get("schema", {}).get("properties", {})
    if "product_area" in props:
        return IntakeRefinement(product_area="feature_flags", language="en").model_dump(mode="json")
    return SynthesisOutput.model_validate(
        {
            "summary": "Flag evaluated before person properties were set.",
            "root_cause": {
                "statement": "Evaluated too early (E1)",
                "confidence": "likely",
                "evidence_ids": ["E1"],
            },
            "known_bug": None,
            "findings": [],
            "ruled_out": [],
            "next_steps": ["Upgrade posthog-js"],
            "questions_for_customer": [],
            "customer_reply_draft": "Hi, we are looking into it.",
            "escalation": {"needed": False, "reason": "", "team": "", "urgency": "P3"},
            "injection_noticed": False,
        }
    ).model_dump(mode="json")


async def burst(triages: int, concurrency: int, caching: bool) -> dict[str, Any]:
    with FakeAnthropic() as fake:
        fake.default = answer
        folder = tempfile.mkdtemp(prefix="cache-bench-")
        model = AnthropicModel(
            fake.api_key,
            base_url=fake.url,
            synthesis_model="claude-sonnet-5-5",
            intake_model="claude-haiku-5-5",
            prompt_caching=caching,
        )
        svc = build_services(
            Settings(anthropic_api_key=fake.api_key),
            tickets=BundledTicketSource(),
            sources=replay_sources(),
            model=model,
            database_url=f"sqlite:///{folder}/bench.db",
        )
        ids = BundledTicketSource().ids()
        slots = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with slots:
                ticket = await svc.engine.fetch(ids[i % len(ids)])
                await svc.engine.triage(ticket, run_id=f"bench-{i}")

        try:
            await asyncio.gather(*(one(i) for i in range(triages)))
            stats = await svc.store.usage_stats(1)
            with svc.store.engine.connect() as conn:
                rows = conn.execute(
                    select(
                        model_calls.c.purpose,
                        func.count(),
                        func.sum(model_calls.c.input_tokens),
                        func.sum(model_calls.c.cache_read_tokens),
                        func.sum(model_calls.c.cache_creation_tokens),
                    ).group_by(model_calls.c.purpose)
                ).all()
        finally:
            await svc.aclose()
        return {"stats": stats, "per_purpose": rows}


def main() -> None:
    logging.basicConfig(level=logging.WARNING, force=True)
    for name in ("httpx", "httpx2", "mcp", "alembic", "integrations", "triage"):
        logging.getLogger(name).setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--triages", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    on = asyncio.run(burst(args.triages, args.concurrency, caching=True))
    off = asyncio.run(burst(args.triages, args.concurrency, caching=False))
    print(
        f"{args.triages} triages of {len(BundledTicketSource().ids())} bundled tickets, concurrency {args.concurrency}\n"
    )
    print(
        f"{'purpose':<11}{'calls':>7}{'prompt tok':>12}{'cache read':>12}{'cache write':>13}{'hit rate':>10}"
    )
    for purpose, calls, uncached, read, write in sorted(on["per_purpose"]):
        total = uncached + read + write
        print(f"{purpose:<11}{calls:>7}{total:>12}{read:>12}{write:>13}{read / total if total else 0:>10.1%}")
    s_on, s_off = on["stats"], off["stats"]
    print(f"\nall calls: cache hit rate {s_on.cache_hit_rate:.1%} (as `triagebot stats` reports it)")
    per_on, per_off = s_on.cost_usd / args.triages, s_off.cost_usd / args.triages
    print(
        f"cost per triage: ${per_on:.5f} with caching, ${per_off:.5f} without ({1 - per_on / per_off:.0%} saved)"
    )


if __name__ == "__main__":
    main()
