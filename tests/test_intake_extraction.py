"""Extraction precision: error messages in real formats, versions in manifests, events and flag keys only
where they look like one, code symbols apart from customer identifiers."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from triage.intake import extract_identifiers, rule_intake
from triage.models import Ticket
from triage.playbooks import bundled_playbooks, load_vocabulary
from triage.protocols import ConfigError

TRACEBACK = """Traceback (most recent call last):
  File "/app/worker.py", line 41, in flush
    client.capture(distinct_id, "order_placed")
  File "/usr/lib/python3.11/site-packages/posthog/client.py", line 312, in capture
    raise APIError(status, body)
posthog.request.APIError: [PostHog] Unauthorized (401)
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "docker compose up fails: Error response from daemon: driver failed programming external "
            "connectivity on endpoint posthog-web-1",
            "Error response from daemon: driver failed programming external connectivity on endpoint",
        ),
        (
            "In Next.js we get Error [PostHogFetchHttpError]: HTTP error while fetching PostHog: 401",
            "PostHogFetchHttpError: HTTP error while fetching PostHog: 401",
        ),
        (
            'The API answers {"type": "validation_error", "message": "Invalid project id"}',
            "Invalid project id",
        ),
        (
            "On Safari the page shows The string did not match the expected pattern. after init",
            "The string did not match the expected pattern",
        ),
        (
            "tsc complains: Property 'displaySurvey' does not exist on type 'PostHog'.",
            "Property 'displaySurvey' does not exist on type 'PostHog'",
        ),
        (
            "The job prints ERROR: .FileNotFoundError: [Errno 2] No such file or directory: '/code/x'",
            "FileNotFoundError: [Errno 2] No such file or directory: '/code/x'",
        ),
        (TRACEBACK, "posthog.request.APIError: [PostHog] Unauthorized (401)"),
        (
            "Uncaught TypeError: posthog.getFeatureFlag is not a function",
            "TypeError: posthog.getFeatureFlag is",
        ),
        ("our console says posthog.init is not a function when we load", "posthog.init is not a function"),
        ("Since Monday we see Failed to fetch when we call flags", "Failed to fetch"),
        (
            "we only see 'Primitive value captured as exception' in the list",
            "Primitive value captured as exception",
        ),
        (
            'the billing page says "The billing limit you set is below your current usage", which is wrong',
            "The billing limit you set is below your current usage",
        ),
        (
            "Terminating app due to uncaught exception 'NSInvalidArgumentException', reason: '-[__NSCFNumber "
            "length]: unrecognized selector sent to instance'",
            "NSInvalidArgumentException: -[__NSCFNumber length]: unrecognized selector sent to instance",
        ),
        (
            "./app/providers.tsx:15:27\nType error: Type 'PostHog' is missing the following properties from type "
            "'PostHog': __autocapture, and 4 more.\n",
            "Type 'PostHog' is missing the following properties from type 'PostHog'",
        ),
        (
            "tsc: Argument of type 'string' is not assignable to parameter of type 'PostHogConfig'.",
            "Argument of type 'string' is not assignable to parameter of type 'PostHogConfig'",
        ),
        (
            'deploy-hobby stops:\n[+] Building 0.0s (0/0)\nunable to prepare context: path "rust" not found\n',
            'unable to prepare context: path "rust" not found',
        ),
        ('every sync fails with the error "Non-OK response" and no details', "Non-OK response"),
        (  # the telling part of an OCI message comes after 200 characters
            "Error response from daemon: failed to create shim task: OCI runtime create failed: runc create "
            'failed: unable to start container process: exec: "/compose/temporal-django-worker": stat '
            "/compose/temporal-django-worker: no such file or directory: unknown",
            "stat /compose/temporal-django-worker: no such file or directory",
        ),
        (  # docker-compose v1 and service-prefixed log lines
            "ERROR: for web  Cannot start service web: driver failed programming external connectivity",
            "Cannot start service web: driver failed programming external connectivity",
        ),
        (
            'plugins_1 | error: relation "posthog_plugin" does not exist',
            'relation "posthog_plugin" does not exist',
        ),
        (
            "The API says {'detail': 'Authentication credentials were not provided.', 'type': 'x'}",
            "Authentication credentials were not provided",
        ),
        ("console: [PostHog.js] Failed to load surveys: TypeError: Load failed", "Failed to load surveys"),
        (
            "GET https://us-assets.i.posthog.com/static/array.js net::ERR_BLOCKED_BY_CLIENT",
            "net::ERR_BLOCKED",
        ),
        (
            "panic: runtime error: invalid memory address or nil pointer dereference",
            "runtime error: invalid memory",
        ),
        (
            "kafka.errors.NoBrokersAvailable: NoBrokersAvailable",
            "kafka.errors.NoBrokersAvailable: NoBrokersAvailable",
        ),
        (
            "django.core.exceptions.ImproperlyConfigured: The SECRET_KEY setting must not be empty.",
            "django.core.exceptions.ImproperlyConfigured: The SECRET_KEY setting must not be empty",
        ),
        (
            "ClickHouse exception, code: 1000; e.displayText() = DB::Exception: Connection refused",
            "DB::Exception:",
        ),
        ("Failed to load resource: the server responded with a status of 404 ()", "Failed to load resource"),
        (
            "NoMethodError (undefined method `capture' for nil:NilClass)",
            "NoMethodError: undefined method `capture' for nil:NilClass",
        ),
        (
            "Could not create dashboard: parse_error: 1 validation error for QuerySchemaRoot "
            "InsightVizNode.source Field required [type=missing]",
            "1 validation error for QuerySchemaRoot InsightVizNode.source Field required",
        ),
    ],
)
def test_error_messages_in_real_formats(text: str, expected: str) -> None:
    errors = extract_identifiers(text).error_messages
    assert any(expected in e for e in errors), errors


def test_apostrophes_and_plain_quotes_are_not_error_messages() -> None:
    text = "We can't see what's wrong. Our 'new dashboard' shows \"Revenue\" fine, isn't that odd?"
    assert extract_identifiers(text).error_messages == []


def test_a_message_in_inline_code_ends_at_the_backtick_and_is_listed_once() -> None:
    text = "We get `Error [PostHogFetchHttpError]: HTTP error while fetching PostHog: 404` in the logs"
    assert extract_identifiers(text).error_messages == [
        "PostHogFetchHttpError: HTTP error while fetching PostHog: 404"
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'La página de facturación dice "No se pudo cargar la suscripción"',
            "No se pudo cargar la suscripción",
        ),
        (
            "La page affiche « Impossible de charger l'abonnement » depuis hier",
            "Impossible de charger l'abonnement",
        ),
        ('Wir bekommen den Fehler "Non-OK response" bei jedem Sync', "Non-OK response"),
        ('Recebemos o erro "Non-OK response" em cada sincronização', "Non-OK response"),
        ("Die Meldung „Zugriff verweigert“ erscheint", "Zugriff verweigert"),
        (
            'calling init throws "Something went wrong while loading remote config"',
            "Something went wrong while loading remote config",
        ),
        ('Die API wirft "Projekt nicht gefunden" zurück', "Projekt nicht gefunden"),
        (
            "the log says 'Table posthog.events doesn't exist' after the upgrade",
            "Table posthog.events doesn't exist",
        ),
        (
            "it shows ‘Something went wrong, please try again’ on the page",
            "Something went wrong, please try again",
        ),
        ("request to /batch/ failed, reason: connect ETIMEDOUT 10.0.0.1:443", "ETIMEDOUT"),
    ],
)
def test_quoted_messages_in_the_ticket_languages(text: str, expected: str) -> None:
    assert extract_identifiers(text).error_messages == [expected]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "We get this error: Failed to load surveys for this project",
            ["Failed to load surveys for this project"],
        ),
        (
            "Recibimos el siguiente error:\n```\nNo se pudo cargar la encuesta\n```",
            ["No se pudo cargar la encuesta"],
        ),
        ("Fehlermeldung: Zugriff verweigert für Projekt", ["Zugriff verweigert für Projekt"]),
        ("The error: it just does not work for us", []),
        ("we see no error: everything looks fine", []),
        ("ERROR: .FileNotFoundError: [Errno 2] No such file", ["FileNotFoundError: [Errno 2] No such file"]),
    ],
)
def test_the_message_after_error_colon(text: str, expected: list[str]) -> None:
    assert extract_identifiers(text).error_messages == expected


def test_quoted_names_in_other_languages_are_not_errors() -> None:
    text = (
        'Nuestro "dashboard nuevo" muestra datos y la "encuesta" también. Wir sehen \'Revenue\' im Dashboard'
    )
    assert extract_identifiers(text).error_messages == []


def test_sdk_console_lines_without_a_failure_are_not_errors() -> None:
    assert (
        extract_identifiers("[PostHog.js] Persistence disabled, [PostHog.js] set_config done").error_messages
        == []
    )
    errors = extract_identifiers(
        "GET https://eu.posthog.com/static/array.js net::ERR_BLOCKED_BY_CLIENT"
    ).error_messages
    assert errors == ["net::ERR_BLOCKED_BY_CLIENT"]  # not the URL's last token before it


def test_prose_with_failure_words_is_not_a_cli_failure_line() -> None:
    text = 'We cannot log in since Monday.\nUnable to see the button: it is gone. The error "x" appears.'
    assert extract_identifiers(text).error_messages == []


def test_traceback_last_line_even_without_error_suffix() -> None:
    text = 'Traceback (most recent call last):\n  File "a.py", line 1\n    x()\npsycopg2.errors.UndefinedTable: relation "posthog_team" does not exist\n'
    assert extract_identifiers(text).error_messages == [
        'psycopg2.errors.UndefinedTable: relation "posthog_team" does not exist'
    ]


@pytest.mark.parametrize(
    ("text", "sdk", "version"),
    [
        ("we import from posthog-js/react version ^1.215.1", "posthog-js", "1.215.1"),
        ("pubspec: (posthog_flutter) Version 4.10.3", "posthog-flutter", "4.10.3"),
        ("Podfile:\n  pod 'PostHog', '~> 3.19.0'", "posthog-ios", "3.19.0"),
        ('package.json: "posthog-node": "~4.2.1"', "posthog-node", "4.2.1"),
        ('implementation("com.posthog:posthog-android:3.8.2")', "posthog-android", "3.8.2"),
        ("posthog-js version: 1.2.3", "posthog-js", "1.2.3"),
        ("we upgraded posthog-js from 1.150.0 to 1.160.0", "posthog-js", "1.160.0"),
    ],
)
def test_versions_in_phrasing_and_manifests(text: str, sdk: str, version: str) -> None:
    assert (sdk, version) in [(s.name, s.version) for s in extract_identifiers(text).sdks]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (  # a stated version beats one read from a pasted path, also after a mention without a version
            "import posthog from 'posthog-node'; Property 'x' does not exist on type 'typeof import(\"/app/node_modules/.pnpm/posthog-node@4.3.2/"
            'node_modules/posthog-node/lib/index")\'. package.json: "posthog-node": "^4.10.2"',
            [("posthog-node", "4.10.2")],
        ),
        ("### Version\n\n4.9.0\n\nposthog_flutter screenshots are blank", [("posthog-flutter", "4.9.0")]),
        ("posthog-js loads, but our app version 2.3.1 crashes", [("posthog-js", None)]),
        ("Fresh React Native 0.81.1 app, identify throws", [("posthog-react-native", None)]),
        ("React Native SDK 4.1.0 crashes on start", [("posthog-react-native", "4.1.0")]),
        ("We're on posthog-js, which is currently 1.236.0", [("posthog-js", "1.236.0")]),
        ("We updated posthog-js to the latest 1.255.0", [("posthog-js", "1.255.0")]),
        ("Our Android app uses the PostHog SDK version 3.1.0", [("posthog-android", "3.1.0")]),
        ("Our Android app 2.3.1 crashes", [("posthog-android", None)]),
        ("Podfile.lock:\nPODS:\n  - PostHog (3.19.0)\n", [("posthog-ios", "3.19.0")]),
        ("- PostHog Cloud is slow today", []),
        (
            'the event: {"$lib": "web", "$lib_version": "1.130.0", "$browser": "Safari"}',
            [("posthog-js", "1.130.0")],
        ),
        (
            "| Dependency | Version |\n| React Native | 0.81.5 |\n| PostHog React Native SDK | ^4.12.3 |",
            [("posthog-react-native", "4.12.3")],
        ),
        ("We have the posthog package version 6.3.3 (pip).", [("posthog-python", "6.3.3")]),
        ("We use posthog-node, latest version (4.3.1)", [("posthog-node", "4.3.1")]),
        ("Using posthog-js (latest, 1.236.0)", [("posthog-js", "1.236.0")]),
        ("posthog-js – 1.130.2", [("posthog-js", "1.130.2")]),
        ("Depuis la mise à jour de posthog-js vers 1.2.3", [("posthog-js", "1.2.3")]),
        ("Después de actualizar posthog-js de 1.2.0 a 1.2.3", [("posthog-js", "1.2.3")]),
        ("Depois de atualizar o posthog-js para 1.2.3", [("posthog-js", "1.2.3")]),
        ("posthog-js in a Next.js 14.2.5 app", [("posthog-js", None)]),
        ("the posthog package version 1.2.3 in our React app", []),
    ],
)
def test_versions_are_the_sdks_own(text: str, expected: list[tuple[str, str | None]]) -> None:
    assert [(s.name, s.version) for s in extract_identifiers(text).sdks] == expected


def test_event_names_only_where_they_look_like_events() -> None:
    ids = extract_identifiers(
        "We track utm_source and use $set for person properties. Stripe sends the webhook event "
        "`customer.discount.created`. Our event `checkout_completed` and $pageview are missing; the "
        "signup_done event too, and posthog.capture('trial started') works. The events (order_placed, "
        "subscription_renewed) stopped."
    )
    assert sorted(ids.event_names) == sorted([
        "checkout_completed", "$pageview", "signup_done", "trial started", "order_placed", "subscription_renewed",
    ])  # fmt: skip


def test_an_api_call_starting_with_capture_takes_no_event() -> None:
    assert extract_identifiers("posthog.captureException(new Error('test')) fails").event_names == []
    assert extract_identifiers("we capture 'signup_done' on the server").event_names == ["signup_done"]
    ids = extract_identifiers("the old call posthog.capture('user-1', 'signup') fails")
    assert (ids.event_names, ids.distinct_ids) == (["signup"], ["user-1"])


def test_sdk_members_and_mixed_names_are_symbols_builtins_are_not() -> None:
    ids = extract_identifiers(
        "Uncaught TypeError: posthog.getActiveMatchingSurveys is not a function. Inside posthog.onFeatureFlags "
        "the value is set. iOS crashes in ph_swizzled_layoutSublayers. JSON.parse(x) and useEffect run; "
        "ReferenceError: Property 'React' doesn't exist"
    )
    assert ids.code_symbols == ["getActiveMatchingSurveys", "onFeatureFlags", "ph_swizzled_layoutSublayers"]


@pytest.mark.parametrize(
    ("text", "area"),
    [
        (
            "After the update posthog.featureFlags.overrideFeatureFlags() no longer type-checks",
            "feature_flags",
        ),
        (
            "App crashes on start: ReferenceError at PostHogProvider (PostHogProvider.js:1:3637)",
            "events_ingestion",
        ),
    ],
)
def test_sdk_api_words_route_to_their_area(text: str, area: str) -> None:
    ticket = Ticket(id=1, subject="Problem", description=text)
    assert rule_intake(ticket, bundled_playbooks()).product_area == area


def test_an_sdk_crash_on_launch_is_the_sdks_area_not_error_tracking() -> None:
    ticket = Ticket(
        id=1,
        subject="Flutter app crashes on launch",
        description="E/AndroidRuntime: FATAL EXCEPTION: main\njava.lang.NullPointerException at com.posthog.PostHog",
    )
    assert rule_intake(ticket, bundled_playbooks()).product_area == "events_ingestion"


def test_api_names_are_code_symbols_never_flag_keys() -> None:
    ids = extract_identifiers(
        "`useFeatureFlagEnabled` returns false for our flag `new-checkout` while isFeatureEnabled works. "
        "posthog.displaySurvey() shows the survey once. We set `person_profiles` and `capture_pageview`. "
        "Error [PostHogFetchHttpError]: HTTP error while fetching PostHog: 500"
    )
    assert ids.flag_keys == ["new-checkout"]
    assert ids.code_symbols == [
        "useFeatureFlagEnabled", "isFeatureEnabled", "displaySurvey", "person_profiles", "capture_pageview",
        "PostHogFetchHttpError",
    ]  # fmt: skip


def test_flag_keys_next_to_flag_or_in_flag_calls_only() -> None:
    ids = extract_identifiers(
        "The flag beta-banner is on. posthog.getFeatureFlag('pricing_v2') is undefined. Flags are fine "
        "otherwise; we also render the `sidebar-nav` component somewhere far away from any of this."
    )
    assert sorted(ids.flag_keys) == ["beta-banner", "pricing_v2"]


def test_a_pasted_url_keeps_ordinary_words_searchable() -> None:
    ticket = Ticket(
        id=1,
        subject="Billing page shows the wrong plan",
        description="See https://us.posthog.com/organization/billing - the billing page shows the wrong plan.",
    )
    intake = rule_intake(ticket, bundled_playbooks())
    assert "billing" in intake.symptom_keywords
    assert intake.identifiers.urls == ["https://us.posthog.com/organization/billing"]
    assert "billing" not in [*intake.identifiers.flag_keys, *intake.identifiers.code_symbols]


# ---------------------------------------------------------------- properties

_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=9)
_PROSE = st.lists(_WORD, min_size=0, max_size=12).map(" ".join)
_VERSION = st.tuples(st.integers(0, 40), st.integers(0, 400), st.integers(0, 99)).map(
    lambda v: f"{v[0]}.{v[1]}.{v[2]}"
)
_CLASS = st.from_regex(r"[A-Z][a-z]{2,8}(?:[A-Z][a-z]{2,8})?Error", fullmatch=True)
_MESSAGE = st.lists(_WORD, min_size=2, max_size=8).map(" ".join)


@settings(max_examples=80, deadline=None)
@given(_PROSE, _CLASS, _MESSAGE, _PROSE)
def test_property_error_class_lines_are_found(before: str, cls: str, message: str, after: str) -> None:
    for shape in (f"{cls}: {message}", f"Error [{cls}]: {message}", f"ERROR: .{cls}: {message}"):
        errors = extract_identifiers(f"{before}\n{shape}\n{after}").error_messages
        assert f"{cls}: {message}" in errors, (shape, errors)


@settings(max_examples=80, deadline=None)
@given(_PROSE, _MESSAGE)
def test_property_json_and_docker_messages_are_found(before: str, message: str) -> None:
    assert message in extract_identifiers(f'{before} {{"message": "{message}"}}').error_messages
    docker = extract_identifiers(f"{before}\nError response from daemon: {message}\n").error_messages
    assert f"Error response from daemon: {message}" in docker


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(["posthog-js", "posthog-node", "posthog-react-native", "posthog-android"]),
    _VERSION,
    st.sampled_from(["{s} {v}", "{s}@{v}", '"{s}": "^{v}"', "{s} version ^{v}", "{s}/react version {v}"]),
    _PROSE,
)
def test_property_versions_attach_to_the_sdk(sdk: str, version: str, shape: str, prose: str) -> None:
    text = f"{prose} " + shape.format(s=sdk, v=version) + " in production"
    assert (sdk, version) in [(s.name, s.version) for s in extract_identifiers(text).sdks]


_KEY = st.from_regex(r"[a-z]{2,8}(?:-[a-z0-9]{2,6}){1,3}", fullmatch=True)
_API = st.sampled_from(
    ["isFeatureEnabled", "useFeatureFlagEnabled", "getFeatureFlag", "onFeatureFlags", "displaySurvey"]
)


@settings(max_examples=80, deadline=None)
@given(_PROSE, _KEY, _API, _PROSE)
def test_property_symbols_and_customer_identifiers_never_mix(
    before: str, key: str, api: str, after: str
) -> None:
    text = f"{before} `{api}` returns false for the flag `{key}` {after}. posthog.{api}('{key}')"
    ids = extract_identifiers(text)
    assert key in ids.flag_keys and api not in ids.flag_keys
    assert api in ids.code_symbols
    private = {v.lower() for v in [*ids.flag_keys, *ids.event_names, *ids.distinct_ids]}
    assert not private & {s.lower() for s in ids.code_symbols}


def test_a_profile_folder_brings_its_own_vocabulary(tmp_path: Path) -> None:
    (tmp_path / "_vocabulary.yaml").write_text(
        "known_events: [$order]\nerror_phrases: [Widget exploded]\nconfig_options: [widget_mode]\n"
    )
    vocabulary = load_vocabulary(tmp_path)
    ids = extract_identifiers(
        "We saw $order drop. Widget exploded on save. We set widget_mode.", None, vocabulary
    )
    assert ids.event_names == ["$order"] and ids.error_messages == ["Widget exploded on save"]
    assert ids.code_symbols == ["widget_mode"]
    assert load_vocabulary(tmp_path / "missing").known_events == load_vocabulary().known_events
    (tmp_path / "_vocabulary.yaml").write_text("known_events: {a: 1}\n")
    with pytest.raises(ConfigError, match="vocabulary"):
        load_vocabulary(tmp_path)
