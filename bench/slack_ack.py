"""Ack latency of `/triage` under load: N concurrent signed slash commands against the HTTP app.

Everything is local: the real app in HTTP mode, a fake Slack Web API, a fake Zendesk (N copies of
ticket #48291, so every command starts its own run) and a slow fake model (every call sleeps
`--model-delay` seconds), with TRIAGE_CONCURRENCY runs at a time. Prints, per batch size:

- ack latency (client-side HTTP round trip of the signed request) p50 / p99 / max — Slack's limit is 3 s;
- time from the request to the first parent card in the triage channel (the card is posted, "queued",
  before a run waits for a slot), p50 / p99 / max.

    .venv/bin/python bench/slack_ack.py [--sizes 50,100,200] [--model-delay 2] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from pydantic import ValidationError
from slack_sdk.signature import SignatureVerifier

# the app, the fakes and the harness are imported in run_batch(): the client process stays light

FIRST_ID = 700000


class SlowModel:
    """A LanguageModel that takes `delay_s` per call and returns a minimal valid answer."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.calls = 0

    async def complete(
        self, *, purpose: str, system: list[str], prompt: str, output_type: Any, max_tokens: int = 4096
    ) -> Any:
        from triage.protocols import LanguageModelError, ModelResult

        self.calls += 1
        await asyncio.sleep(self.delay_s)
        for candidate in (
            {},
            {"summary": "Benchmark answer from a slow fake model."},
            {"answer": "Benchmark."},
        ):
            try:
                return ModelResult(output=output_type.model_validate(candidate), model="slow-fake")
            except ValidationError:
                continue
        raise LanguageModelError("slow fake model has no canned answer for this output type")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def run_batch(n: int, model_delay: float, concurrency: int) -> dict[str, Any]:
    from bot.slack_runtime import runtime_for
    from tests.fakes.slack import FakeSlack
    from tests.fakes.zendesk import FakeZendesk
    from tests.slack_support import (
        SECRET,
        TRIAGE_CHANNEL,
        ZD_EMAIL,
        ZD_TOKEN,
        SlackHarness,
        example,
        seed_ticket,
    )

    slack = FakeSlack()
    slack.start()
    zendesk = FakeZendesk()
    zendesk.start()
    zendesk.accept_token(ZD_EMAIL, ZD_TOKEN)
    base = example(48291)
    for i in range(n):
        seed_ticket(zendesk, base.model_copy(update={"id": FIRST_ID + i}))
    with tempfile.TemporaryDirectory() as tmp:
        h = SlackHarness(
            slack,
            zendesk,
            Path(tmp) / "bench.db",
            {"triage_concurrency": concurrency, "slack_update_interval_seconds": 1.0, "zendesk_workers": 8},
            model=SlowModel(model_delay),
        )
        await h.start()
        await h.command("help")  # warm-up: auth.test, imports
        # The requests come from another process, as they would from Slack: the client's own CPU
        # does not share the app's event loop. CLOCK_MONOTONIC is system-wide, so times compare.
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--client",
            h.url,
            slack.url,
            str(n),
            SECRET,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await proc.communicate()
        sent = json.loads(out.decode().strip().splitlines()[-1])
        sent_at = {int(ticket): float(at) for ticket, at, _ in sent}
        acks = [float(elapsed) for _, _, elapsed in sent]
        first_parent: dict[int, float] = {}
        deadline = time.monotonic() + 120
        while len(first_parent) < n and time.monotonic() < deadline:
            for call in list(slack.api_calls):
                if call.method != "chat.postMessage" or call.params.get("thread_ts"):
                    continue
                if call.params.get("channel") != TRIAGE_CHANNEL:
                    continue
                text = str(call.params.get("text", ""))
                for ticket in sent_at:
                    if ticket not in first_parent and text.startswith(f"#{ticket} "):
                        first_parent[ticket] = call.at - sent_at[ticket]
            await asyncio.sleep(0.05)
        wall = time.monotonic() - t0
        rt = runtime_for(h.svc)
        running = sum(1 for t in rt.tasks if not t.done())
        await rt.drain(0.5)  # do not wait for N slow runs: cancel them
        await h.close()
    slack.stop()
    zendesk.stop()
    parents = list(first_parent.values())
    return {
        "n": n,
        "ack_p50": statistics.median(acks) * 1000,
        "ack_p99": pct(acks, 0.99) * 1000,
        "ack_max": max(acks) * 1000,
        "parent_p50": statistics.median(parents) * 1000 if parents else float("nan"),
        "parent_p99": pct(parents, 0.99) * 1000,
        "parent_max": max(parents) * 1000 if parents else float("nan"),
        "parents": len(parents),
        "wall_s": wall,
        "in_flight": running,
    }


async def client(url: str, slack_url: str, n: int, secret: str) -> None:
    """The child process: fire N signed /triage commands at once, print [ticket, sent_at, ack_s] rows."""
    from urllib.parse import urlencode

    verifier = SignatureVerifier(secret)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:

        async def one(i: int) -> list[float]:
            ticket = FIRST_ID + i
            body = urlencode(
                {
                    "team_id": "T111",
                    "channel_id": "C0SUPPORT",
                    "user_id": "W111",
                    "command": "/triage",
                    "text": str(ticket),
                    "api_app_id": "A111",
                    "response_url": f"{slack_url}/response/b{ticket}",
                    "trigger_id": f"1.2.{i}",
                }
            )
            ts = str(int(time.time()))
            headers = {
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": verifier.generate_signature(timestamp=ts, body=body),
            }
            at = time.monotonic()
            async with session.post(url, data=body.encode(), headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")
            return [ticket, at, time.monotonic() - at]

        rows = await asyncio.gather(*(one(i) for i in range(n)))
    print(json.dumps(rows))


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="50,100,200")
    parser.add_argument("--model-delay", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument(
        "--client", nargs=4, metavar=("URL", "SLACK_URL", "N", "SECRET"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.client:
        await client(args.client[0], args.client[1], int(args.client[2]), args.client[3])
        return
    logging.basicConfig(level=logging.ERROR)
    for noisy in ("slack_bolt", "slack_sdk", "bot", "triage", "integrations", "mcp", "httpx", "zenpy"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)

    rows = [await run_batch(int(s), args.model_delay, args.concurrency) for s in args.sizes.split(",")]
    print(
        f"\n/triage ack benchmark — slow fake model {args.model_delay:.1f}s/call, "
        f"TRIAGE_CONCURRENCY={args.concurrency}, all local fakes\n"
    )
    print(
        "| concurrent | ack p50 | ack p99 | ack max | first parent p50 | first parent p99 | first parent max | parents |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['n']} | {r['ack_p50']:.0f} ms | {r['ack_p99']:.0f} ms | {r['ack_max']:.0f} ms "
            f"| {r['parent_p50']:.0f} ms | {r['parent_p99']:.0f} ms | {r['parent_max']:.0f} ms "
            f"| {r['parents']}/{r['n']} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
