"""The GitHub half of bench/known_bug_recall.py: the production `GitHubSource` against the GitHub-semantics
fake (`integrations.github.offline.OfflineGitHub`, GitHub's search rules), loaded with the labelled
cases' issues and fix PRs, realistic distractors (other real PostHog issues and PRs from the case file,
every real merged-PR title and release of ../shared/data/github/posthog-sdk-history.json via
tests/fakes/github.py), and the real releases, so fixed-in is looked up through paginated releases.

Fix PRs: number and merge commit come from the release CHANGELOG sections and commit references of the
history file; their merge time is approximated as 10 minutes before the first release whose CHANGELOG
names them (the history file has no PR merge time for them), and their body says "Fixes #N" as the
commit references record.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from triage.models import Evidence, EvidenceStatus, Intake
from triage.playbooks import bundled_playbooks, playbook_for_area
from triage.versions import compare_versions

FIX_BEFORE_RELEASE = timedelta(minutes=10)


@dataclass
class Outcome:
    rows: list[Evidence]


def _release_of(releases: list[dict[str, Any]], fixed_in: str) -> dict[str, Any] | None:
    for release in releases:
        tag = str(release.get("tag_name") or "")
        if tag.rsplit("@", 1)[-1].lstrip("v").split("-v")[-1] == fixed_in or tag.endswith(f"v{fixed_in}"):
            return release
    return None


class GitHubBench:
    def __init__(self, source: Any, world: Any) -> None:
        self.source = source
        self.world = world

    @classmethod
    def create(cls, data: dict[str, Any]) -> GitHubBench | None:
        try:
            from integrations.github.offline import OfflineGitHub, issue_item, offline_transport
            from integrations.github.source import GitHubSource
            from tests.fakes.github import history_prs, history_releases, known_repos
        except ImportError:
            return None
        world = OfflineGitHub(repos=known_repos())
        repos: set[str] = set()
        for raw in [*data["issues"].values(), *data["distractors"]]:
            repos.add(raw["repo"])
            merged = raw.get("merged")
            world.add(
                issue_item(
                    raw["repo"],
                    raw["number"],
                    raw["title"],
                    body=raw["body"],
                    state=raw["state"],
                    labels=raw.get("labels") or [],
                    created_at=raw["created_at"],
                    pull=raw.get("is_pr", False),
                    merged_at=raw["created_at"] if merged else None,
                )
            )
        for repo in sorted(repos | {"PostHog/posthog-js", "PostHog/posthog-android", "PostHog/posthog-ios"}):
            releases = history_releases(repo)
            if releases:
                world.add_releases(repo, releases)
            world.add(*history_prs(repo))
        for fix in data.get("fixes") or []:
            release = _release_of(world.releases.get(fix["repo"].lower(), []), fix["fixed_in"])
            if release is None:
                continue
            published = datetime.fromisoformat(str(release["published_at"]).replace("Z", "+00:00"))
            merged_at = (published - FIX_BEFORE_RELEASE).strftime("%Y-%m-%dT%H:%M:%SZ")
            world.add(
                issue_item(
                    fix["repo"],
                    fix["number"],
                    fix["title"],
                    body=f"Fixes #{fix['fixes']}\n\n{fix.get('body', '')}",
                    state="closed",
                    created_at=merged_at,
                    merged_at=merged_at,
                    merge_commit_sha=fix.get("merge_commit_sha"),
                )
            )
        source = GitHubSource(transport=offline_transport(world), semantic_search=False, max_wait_s=0.1)
        return cls(source, world)

    async def run(self, case: dict[str, Any], intake: Intake) -> Outcome:
        playbook = playbook_for_area(bundled_playbooks(), intake.product_area)
        tasks = self.source.plan(intake, playbook)
        results = await asyncio.gather(*(self.source.execute(t) for t in tasks))
        return Outcome(rows=[row for rows in results for row in rows])

    @staticmethod
    def score(outcome: Outcome, truth: dict[str, Any], tally: Any, case_id: str) -> None:
        accepted = {truth["known_issue"].lower(), *(a.lower() for a in truth.get("also_accepted") or [])}
        tally.searched += 1
        ok = [r for r in outcome.rows if r.status == EvidenceStatus.ok]

        def key(row: Evidence) -> str:
            return f"{row.data.get('repo')}#{row.data.get('number')}".lower()

        hits = [i for i, row in enumerate(ok) if key(row) in accepted]
        if hits:
            tally.in_evidence += 1
            per_task: dict[str, int] = {}
            positions = []
            for row in ok:
                per_task[row.task_key] = per_task.get(row.task_key, 0) + 1
                if key(row) in accepted:
                    positions.append(per_task[row.task_key])
            tally.in_top3 += min(positions) <= 3
        else:
            tally.misses.append(f"{case_id}: known issue {truth['known_issue']} not in evidence")
        if truth.get("fix_pr") or truth.get("fixed_in"):
            tally.fix_expected += 1
            rows = [ok[i] for i in hits]
            if truth.get("fix_pr") and any(r.data.get("fix_pr_number") == truth["fix_pr"] for r in rows):
                tally.fix_found += 1
            if rows and truth.get("fixed_in"):
                tally.fixed_in_checked += 1
                got = [str(r.data.get("fixed_in") or "") for r in rows]
                if any(g and compare_versions(g, truth["fixed_in"]) == 0 for g in got):
                    tally.fixed_in_correct += 1
                else:
                    tally.misses.append(f"{case_id}: fixed_in {got} != {truth['fixed_in']}")
