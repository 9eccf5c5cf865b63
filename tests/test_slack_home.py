"""The App Home tab: published on app_home_opened with the viewer's triages and the last 7 days."""

from __future__ import annotations

import json
from pathlib import Path

from formatting.actions import ACTION_FEEDBACK_UP
from formatting.home import MAX_RECENT, HomeTriage, HomeWeek, home_view
from formatting.limits import validate_home
from tests.slack_support import TRIAGE_CHANNEL, slack_harness
from triage.models import Confidence


def _home_event(user: str, tab: str = "home") -> dict[str, str]:
    return {
        "type": "app_home_opened",
        "user": user,
        "channel": "D0HOME",
        "tab": tab,
        "ts": "1700009999.000001",
    }


async def test_home_tab_lists_my_triages_and_the_week(tmp_path: Path) -> None:
    async with slack_harness(tmp_path) as h:
        run = await h.run_to_done(48291)  # /triage by W111
        await h.action(ACTION_FEEDBACK_UP, run.run_id)
        await h.idle()

        await h.event(_home_event("W111"))
        await h.idle()
        (published,) = h.slack.calls_to("views.publish")
        assert published.params["user_id"] == "W111"
        view = published.params["view"]
        assert view["type"] == "home" and validate_home(view) == []
        text = json.dumps(view, ensure_ascii=False)
        assert "#48291" in text and "new-checkout-flow" in text  # ticket and subject
        assert f"archives/{TRIAGE_CHANNEL}/p" in text  # link to the thread
        assert "✅ done" in text
        assert "Last 7 days" in text and "*Triages*\\n1" in text and "👍 1 · 👎 0" in text

        # somebody else's Home tab: no triages of theirs, the same workspace numbers
        await h.event(_home_event("W222"))
        await h.idle()
        other = json.dumps(h.slack.calls_to("views.publish")[-1].params["view"], ensure_ascii=False)
        assert "#48291" not in other and "not triaged anything yet" in other and "*Triages*\\n1" in other

        # the Messages tab is not ours to draw
        await h.event(_home_event("W111", tab="messages"))
        await h.idle()
        assert len(h.slack.calls_to("views.publish")) == 2


async def test_home_tab_of_a_user_without_access_shows_the_refusal(tmp_path: Path) -> None:
    async with slack_harness(tmp_path, slack_allowed_users="W111") as h:
        await h.event(_home_event("W999"))
        await h.idle()
        view = h.slack.calls_to("views.publish")[-1].params["view"]
        assert "not allowed" in json.dumps(view) and validate_home(view) == []


def test_home_view_stays_within_block_kit_limits_with_hostile_long_data() -> None:
    hostile = HomeTriage(
        ticket="#1",
        subject="<!channel> " + "x" * 5000,
        status="done",
        grade=Confidence.suspected,
        escalate=True,
        thread_url="https://acme.slack.com/archives/C1/p1",
    )
    view = home_view("W1", [hostile] * 500, HomeWeek(7, 10**6, 10**5, 10**4, 10**3, 12345.678))
    assert validate_home(view) == []
    text = json.dumps(view)
    assert "<!channel>" not in text and "$12,345.68" in text
    assert sum(1 for b in view["blocks"] if b["type"] == "section") <= MAX_RECENT + 2
