"""The one version comparison: packaging semantics, npm pre-releases, tags, and the places that use it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from integrations import registries
from triage import drafts, synthesis, versions
from triage.versions import compare_versions, is_behind, older_than, parse_version


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ("1.2.3-beta.1", "1.2.3", -1),
        ("1.2.3-alpha.2", "1.2.3-beta.1", -1),
        ("1.2.3-beta.2", "1.2.3-beta.10", -1),
        ("1.2.3-rc.1", "1.2.3", -1),
        ("1.296.0-next.3", "1.296.0", -1),
        ("1.296.0-canary.1", "1.295.9", 1),
        ("3.7.0rc1", "3.7.0", -1),
        ("2.0.0.dev0", "2.0.0a1", -1),
        ("1.0.0.post1", "1.0.0", 1),
        ("1.0.0+build.5", "1.0.0", 0),
        ("^1.215.1", "1.215.1", 0),
        ("posthog-js@1.161.2", "v1.161.2", 0),
        ("3.6", "3.6.0", 0),
        ("garbage", "0.0.1", -1),
    ],
)
def test_compare_versions(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


def test_a_prerelease_is_older_than_its_release_everywhere() -> None:
    # drafts and registries used to disagree here: drafts read "1.296.0-beta.1" as 1.296.0
    assert older_than("1.296.0-beta.1", "1.296.0") is True
    assert is_behind("1.296.0-beta.1", "1.296.0") is True
    assert older_than("1.296.0", "1.296.0") is False and older_than("x", "1.0.0") is None
    assert registries.compare_versions is versions.compare_versions
    assert synthesis.older_than is versions.older_than
    assert not hasattr(drafts, "version_tuple") and not hasattr(drafts, "older_than")


_PART = st.integers(0, 300)


@given(_PART, _PART, _PART, st.sampled_from(["alpha", "beta", "rc", "next", "canary"]), st.integers(0, 30))
def test_property_npm_prerelease_sorts_before_its_release(
    major: int, minor: int, patch: int, label: str, n: int
) -> None:
    release = f"{major}.{minor}.{patch}"
    assert parse_version(f"{release}-{label}.{n}") is not None
    assert compare_versions(f"{release}-{label}.{n}", release) == -1
    assert compare_versions(release, f"{major}.{minor}.{patch + 1}-{label}.{n}") == -1
