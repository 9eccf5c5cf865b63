"""RegistrySource (npm, PyPI) against a local fake, version comparison, and the recorded demo answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from integrations.http_replay import load_recorded, replay_transport
from integrations.registries import RegistrySource, compare_versions, is_behind, version_from_tag
from tests.fakes.registries import RegistryFake
from triage.models import EvidenceStatus, Identifiers, Intake, ResearchTask, Sdk
from triage.playbooks import Playbook
from triage.protocols import ResearchSource

PLAYBOOK = Playbook(id="x", title="X")


def intake(*sdks: Sdk) -> Intake:
    return Intake(identifiers=Identifiers(sdks=list(sdks)))


@pytest.fixture
def fake() -> Iterator[RegistryFake]:
    server = RegistryFake(
        npm={"posthog-js": "1.165.0", "@posthog/core": "1.2.0", "posthog-react-native": "3.6.1"},
        pypi={"posthog": "3.7.4"},
    )
    with server:
        yield server


def source(fake: RegistryFake, **kwargs: Any) -> RegistrySource:
    options: dict[str, Any] = {"timeout_s": 5, "max_retries": 1, "backoff_s": 0.01}
    options.update(kwargs)
    return RegistrySource(f"{fake.url}/npm", fake.url, **options)


def task_for(src: RegistrySource, sdk: Sdk) -> ResearchTask:
    tasks = src.plan(intake(sdk), PLAYBOOK)
    assert len(tasks) == 1
    return tasks[0]


# ---------------------------------------------------------------- plan


def test_is_a_research_source() -> None:
    assert isinstance(RegistrySource(), ResearchSource)
    assert RegistrySource().name == "registry"


def test_plan_uses_catalogue_then_builtin_map() -> None:
    src = RegistrySource()
    tasks = src.plan(
        intake(
            Sdk(name="posthog-js", version="1.160.0", package="posthog-js", registry="npm"),
            Sdk(name="posthog-python", version="3.6.0"),  # no catalogue data → built-in map (PyPI "posthog")
            Sdk(name="posthog-ios", version="3.1.0"),  # no registry → no task
            Sdk(name="posthog-js", version="1.160.0"),  # duplicate package → one task
        ),
        PLAYBOOK,
    )
    assert [(t.key, t.tool) for t in tasks] == [
        ("registry:npm:posthog-js", "npm_latest"),
        ("registry:pypi:posthog", "pypi_latest"),
    ]
    assert tasks[1].arguments == {
        "registry": "pypi",
        "package": "posthog",
        "sdk": "posthog-python",
        "customer_version": "3.6.0",
    }
    assert all(t.source == "registry" for t in tasks)


# ---------------------------------------------------------------- execute


async def test_npm_latest_and_behind(fake: RegistryFake) -> None:
    src = source(fake)
    rows = await src.execute(
        task_for(src, Sdk(name="posthog-js", version="1.160.0", package="posthog-js", registry="npm"))
    )
    assert len(rows) == 1
    row = rows[0]
    assert row.status == EvidenceStatus.ok
    assert row.data == {
        "package": "posthog-js",
        "registry": "npm",
        "latest": "1.165.0",
        "customer_version": "1.160.0",
        "behind": True,
    }
    assert row.summary.startswith("posthog-js: customer on 1.160.0, latest is 1.165.0")
    assert row.url == "https://www.npmjs.com/package/posthog-js"
    assert fake.raw_paths == ["/npm/posthog-js/latest"]


async def test_npm_scoped_package_is_url_encoded(fake: RegistryFake) -> None:
    src = source(fake)
    rows = await src.execute(
        task_for(src, Sdk(name="core", version="1.2.0", package="@posthog/core", registry="npm"))
    )
    assert rows[0].status == EvidenceStatus.ok
    assert rows[0].data["latest"] == "1.2.0"
    assert rows[0].data["behind"] is False
    assert "latest" in rows[0].summary
    assert fake.raw_paths == ["/npm/@posthog%2Fcore/latest"]


async def test_pypi_latest(fake: RegistryFake) -> None:
    src = source(fake)
    rows = await src.execute(
        task_for(src, Sdk(name="posthog-python", version="3.6.0", package="posthog", registry="pypi"))
    )
    assert rows[0].status == EvidenceStatus.ok
    assert rows[0].data["latest"] == "3.7.4"
    assert rows[0].data["behind"] is True
    assert rows[0].summary.startswith("posthog-python: customer on 3.6.0, latest is 3.7.4")
    assert fake.raw_paths == ["/pypi/posthog/json"]


async def test_unknown_customer_version(fake: RegistryFake) -> None:
    src = source(fake)
    rows = await src.execute(task_for(src, Sdk(name="posthog-react-native")))
    assert rows[0].data["customer_version"] is None
    assert rows[0].data["behind"] is False
    assert "unknown" in rows[0].summary


async def test_missing_package_is_empty(fake: RegistryFake) -> None:
    src = source(fake)
    rows = await src.execute(
        task_for(src, Sdk(name="x", version="1.0.0", package="no-such-pkg", registry="npm"))
    )
    assert rows[0].status == EvidenceStatus.empty


async def test_500_retried_then_ok_and_then_error(fake: RegistryFake) -> None:
    src = source(fake, max_retries=1)
    task = task_for(src, Sdk(name="posthog-js", version="1.160.0"))
    fake.fail("npm", "500")
    assert (await src.execute(task))[0].status == EvidenceStatus.ok
    fake.fail("npm", "500", "500")
    rows = await src.execute(task)
    assert rows[0].status == EvidenceStatus.error
    assert rows[0].data["error_kind"] == "http_error"
    assert len(fake.raw_paths) == 4


async def test_malformed_body_is_error(fake: RegistryFake) -> None:
    fake.fail("pypi", "malformed")
    src = source(fake)
    rows = await src.execute(task_for(src, Sdk(name="posthog-python", version="3.6.0")))
    assert rows[0].status == EvidenceStatus.error
    assert rows[0].data["error_kind"] == "malformed"


async def test_slow_registry_is_timeout(fake: RegistryFake) -> None:
    fake.fail("npm", "slow")
    src = source(fake, timeout_s=0.2)
    rows = await src.execute(task_for(src, Sdk(name="posthog-js", version="1.160.0")))
    assert rows[0].status == EvidenceStatus.timeout


async def test_replay_recorded_registries() -> None:
    src = RegistrySource(transport=replay_transport(load_recorded("registries")))
    sdks = [
        Sdk(name="posthog-js", version="1.160.0", package="posthog-js", registry="npm"),
        Sdk(name="posthog-react-native", version="3.3.0", package="posthog-react-native", registry="npm"),
        Sdk(name="posthog-python", version="3.6.0", package="posthog", registry="pypi"),
    ]
    latest = {}
    for task in src.plan(intake(*sdks), PLAYBOOK):
        rows = await src.execute(task)
        latest[rows[0].data["package"]] = (rows[0].data["latest"], rows[0].data["behind"])
    assert latest == {
        "posthog-js": ("1.165.0", True),
        "posthog-react-native": ("3.6.1", True),
        "posthog": ("3.7.4", True),
    }


# ---------------------------------------------------------------- versions


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.160.0", "1.165.0", -1),
        ("1.165.0", "1.160.0", 1),
        ("1.9.0", "1.10.0", -1),
        ("v1.10.0", "1.9.9", 1),
        ("3.6", "3.6.0", 0),
        ("1.2.3-beta.1", "1.2.3", -1),
        ("1.2.3-alpha.2", "1.2.3-beta.1", -1),
        ("1.2.3-beta.2", "1.2.3-beta.10", -1),
        ("3.7.0rc1", "3.7.0", -1),
        ("2.0.0.dev0", "2.0.0a1", -1),
        ("1.0.0.post1", "1.0.0", 1),
        ("1.0.0+build.5", "1.0.0", 0),
        ("posthog-js@1.161.2", "1.161.2", 0),
        ("garbage", "0.0.1", -1),
    ],
)
def test_compare_versions(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected


def test_is_behind() -> None:
    assert is_behind("1.160.0", "1.165.0") is True
    assert is_behind("1.165.0", "1.165.0") is False
    assert is_behind("2.0.0-rc.1", "1.9.0") is False
    assert is_behind(None, "1.0.0") is False
    assert is_behind("1.0.0", None) is False


@pytest.mark.parametrize(
    ("tag", "version"),
    [
        ("v1.161.2", "1.161.2"),
        ("posthog-js@1.161.2", "1.161.2"),
        ("posthog-react-native@3.4.0", "3.4.0"),
        ("posthog-react-native-v3.4.0", "3.4.0"),
        ("1.2.0-beta.1", "1.2.0-beta.1"),
        ("nightly", None),
    ],
)
def test_version_from_tag(tag: str, version: str | None) -> None:
    assert version_from_tag(tag) == version
