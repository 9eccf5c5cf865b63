"""No customer identifier ever reaches a GitHub query (property test), and public words still do."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from integrations.github import GitHubSource
from integrations.github.queries import Privacy, extract_terms
from triage.intake.sdks import extract_sdks
from triage.models import Identifiers, Intake, Sdk
from triage.playbooks import bundled_playbooks, implied_sdks, load_sdk_catalogue

SURVEYS = bundled_playbooks()["surveys"]
word = st.from_regex(r"[a-z]{3,9}", fullmatch=True)
flag_key = st.builds(lambda a, b, n: f"{a}-{b}" + (f"-v{n}" if n else ""), word, word, st.integers(0, 9))
distinct_id = st.builds(lambda a, n: f"{a}_{n}", word, st.integers(100, 10**9))
org = st.from_regex(r"[a-z]{4,10}", fullmatch=True)
email = st.builds(lambda local, dom: f"{local}@{dom}.io", word, org)
host = st.builds(lambda dom: f"app.{dom}.com", org)
uuid = st.uuids().map(str)
number = st.integers(1000, 10**7).map(str)


@st.composite
def hostile_intake(draw: st.DrawFn) -> tuple[Intake, list[str]]:
    flags = draw(st.lists(flag_key, min_size=1, max_size=2))
    ids = draw(st.lists(distinct_id, min_size=1, max_size=2))
    emails = draw(st.lists(email, min_size=1, max_size=2))
    hosts = draw(st.lists(host, min_size=1, max_size=2))
    surveys = draw(st.lists(uuid, max_size=1))
    numbers = draw(st.lists(number, min_size=1, max_size=2))
    urls = [f"https://{h}/project/{numbers[0]}/{flags[0]}" for h in hosts]
    private = [*flags, *ids, *emails, *hosts, *surveys, *numbers, *urls]
    orgs = [h.split(".")[1] for h in hosts] + [e.split("@")[1].split(".")[0] for e in emails]
    public = draw(
        st.lists(
            st.sampled_from(["displaySurvey", "survey", "closing", "popover", "isFeatureEnabled"]), max_size=3
        )
    )
    mixed = draw(st.permutations([*private, *orgs, *public]))
    keywords = [" ".join(mixed[i : i + 3]) for i in range(0, len(mixed), 3)]
    sentence = " ".join(draw(st.permutations([*mixed[:4], "survey", "not", "shown"])))
    intake = Intake(
        product_area="surveys",
        symptom_keywords=keywords,
        search_queries=[sentence],
        identifiers=Identifiers(
            flag_keys=flags,
            distinct_ids=ids,
            emails=emails,
            hosts=hosts,
            urls=urls,
            survey_ids=surveys,
            code_symbols=[*public, *flags[:1], f"posthog.{flags[0]}"],
            error_messages=[
                f"TypeError: cannot read {flags[0]} of {ids[0]} at {urls[0]} ({numbers[0]})",
                # a code word of the customer's own (their org in it) is kept by the error core unless private
                f"TypeError: {orgs[0]}Checkout.init is not a function for '{emails[0]}'",
            ],
            sdks=[Sdk(name="posthog-js", version="1.290.1")],
        ),
    )
    return intake, [*private, *orgs]


@settings(max_examples=60, deadline=None)
@given(hostile_intake())
def test_no_customer_identifier_ever_appears_in_a_query(case: tuple[Intake, list[str]]) -> None:
    intake, private = case
    for task in GitHubSource().plan(intake, SURVEYS):
        for query in task.arguments.get("queries") or []:
            text = query["q"].lower()
            free = re.sub(r"\(?repo:\S+|\bOR\b|is:\w+|\)", " ", text)
            for value in private:
                assert value.lower() not in free, (value, query["q"])
            assert not re.search(r"\d", free), query["q"]  # no number from their data


def test_public_words_survive_a_pasted_url() -> None:
    intake = Intake(
        symptom_keywords=["billing", "invoice", "https://us.posthog.com/organization/billing"],
        identifiers=Identifiers(
            urls=["https://us.posthog.com/organization/billing"], code_symbols=["useFeatureFlagEnabled"]
        ),
    )
    terms = extract_terms(intake)
    assert "billing" in terms.symptoms and terms.symbols == ["useFeatureFlagEnabled"]


def test_privacy_refuses_identifier_pieces_but_not_plain_words() -> None:
    privacy = Privacy.of(
        Intake(identifiers=Identifiers(flag_keys=["new-checkout_v2"], emails=["jo@acme.io"]))
    )
    assert not privacy.allows("new-checkout_v2") and not privacy.allows("checkout_v2")
    assert not privacy.allows("acme") and not privacy.allows("jo@acme.io")
    assert privacy.allows("checkout") and privacy.allows("isFeatureEnabled")


def test_platform_words_imply_the_sdk_but_not_in_a_browser() -> None:
    catalogue = load_sdk_catalogue()

    def names(text: str) -> list[str]:
        return [s.name for s in implied_sdks(text, catalogue)]

    assert names("the survey never shows on Android") == ["posthog-android"]
    assert names("our iOS app drops events") == ["posthog-ios"]
    assert names("flags are empty in our Next.js app") == ["posthog-js"]
    assert names("Flutter app on Android crashes") == ["posthog-flutter"]
    assert names("the survey never shows on Android in Chrome") == ["posthog-js"]
    implied = extract_sdks("the survey never shows on Android", catalogue)
    assert [(s.name, s.implied) for s in implied] == [("posthog-android", True)]
    assert [s.implied for s in extract_sdks("posthog-android 3.1.0 on Android", catalogue)] == [False]


def test_query_syntax_in_a_model_query_is_defused() -> None:
    # `word:value` would be an (unknown) qualifier that matches nothing; NOT and a leading "-" negate
    intake = Intake(
        product_area="surveys",
        symptom_keywords=["survey"],
        search_queries=["survey page:header NOT shown -popover (mobile)"],
        identifiers=Identifiers(sdks=[Sdk(name="posthog-js", version="1.290.1")]),
    )
    task = next(t for t in GitHubSource().plan(intake, SURVEYS) if t.key == "github:model_queries")
    query = task.arguments["queries"][0]["q"]
    assert query.startswith('survey "page header" not shown popover mobile (repo:')
