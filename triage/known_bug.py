"""Known bugs come from GitHub evidence rows, never from the model.

The model may only *choose* a cited GitHub row and explain why it matches; every fact of the known bug is
copied from that row. The keys read from a GitHub row (`Evidence.data`, written by `integrations.github`):

| key           | meaning                                                         | `KnownBug` field |
|---------------|-----------------------------------------------------------------|------------------|
| (`Evidence.url`)   | the issue or PR page                                       | `issue_url`      |
| (`Evidence.title`) | "owner/repo#N title"                                       | `title`          |
| `issue_state` | "open" / "closed" (for a PR row: "merged" when `fix_merged`)   | `state`          |
| `fix_pr_url`  | the fixing PR (a PR row is its own fix)                         | `fix_pr_url`     |
| `fix_merged`  | that PR is merged                                               | `fix_merged`     |
| `fixed_in`    | the first release containing the merged fix                     | `fixed_in`       |
| `exact_match` | the adapter's own match signal (symptom terms + SDK + version)  | `exact_match`    |
| `repo`        | "owner/name", used to find the customer's SDK version           |                  |

A released fix *applies* to the customer when the customer's version of that SDK is older than `fixed_in`.
"""

from __future__ import annotations

from collections.abc import Iterable

from triage.models import Evidence, EvidenceStatus, Intake, KnownBug
from triage.versions import older_than

GITHUB_SOURCE = "github"


def is_github_row(ev: Evidence) -> bool:
    """An ok GitHub issue/PR row that can back a known bug."""
    return (
        ev.source == GITHUB_SOURCE and ev.status == EvidenceStatus.ok and bool(ev.url) and "repo" in ev.data
    )


def known_bug_from_row(ev: Evidence, *, exact_claimed: bool = True, match_reason: str = "") -> KnownBug:
    """Every fact copied from the row; `exact_match` needs the row's own signal (and the claim, if any)."""
    data = ev.data
    merged = bool(data.get("fix_merged"))
    state = str(data.get("issue_state") or "")
    if data.get("is_pr") and merged:
        state = "merged"
    fixed_in = data.get("fixed_in")
    return KnownBug(
        issue_url=str(ev.url),
        title=ev.title,
        state=state,
        fix_pr_url=str(data["fix_pr_url"]) if data.get("fix_pr_url") else None,
        fix_merged=merged,
        fixed_in=str(fixed_in) if fixed_in and merged else None,
        exact_match=bool(data.get("exact_match")) and exact_claimed,
        match_reason=match_reason,
        evidence_ids=[ev.id],
    )


def choose_known_bug(claim: KnownBug | None, rows: dict[str, Evidence]) -> tuple[KnownBug | None, list[str]]:
    """The model's choice resolved against the evidence: (known bug or None, grading notes).

    `rows` are the citable rows by id. The first cited GitHub row wins; with none there is no known bug.
    """
    if claim is None:
        return None, []
    cited = [rows[i] for i in claim.evidence_ids if i in rows]
    chosen = next((ev for ev in cited if is_github_row(ev)), None)
    if chosen is None:
        return None, ["known bug dropped: it cites no GitHub issue or PR that returned data"]
    bug = known_bug_from_row(chosen, exact_claimed=claim.exact_match, match_reason=claim.match_reason)
    notes: list[str] = []
    changed = [
        name
        for name, model_value, row_value in (
            ("link", claim.issue_url, bug.issue_url),
            ("state", claim.state, bug.state),
            ("fix PR", claim.fix_pr_url, bug.fix_pr_url),
            ("fix merged", claim.fix_merged, bug.fix_merged),
            ("fixed in", claim.fixed_in, bug.fixed_in),
        )
        if model_value != row_value and (model_value or row_value)
    ]
    if changed:
        notes.append(f"known bug: {', '.join(changed)} taken from {chosen.id}, not from the model")
    if claim.exact_match and not bug.exact_match:
        notes.append(f"known bug: {chosen.id} has no exact-match signal; shown as a similar issue")
    return bug, notes


def customer_version(bug_row: Evidence, intake: Intake) -> str | None:
    """The customer's version of the SDK the bug's repo ships (None when unknown or ambiguous)."""
    repo = str(bug_row.data.get("repo") or "").lower()
    repo_name = repo.rsplit("/", 1)[-1]
    versioned = [s for s in intake.identifiers.sdks if s.version]
    for sdk in versioned:
        names = {sdk.name.lower(), (sdk.package or "").lower()}
        if repo_name and repo_name in names:
            return sdk.version
    return None


def fix_applies(bug: KnownBug | None, rows: dict[str, Evidence], intake: Intake) -> bool:
    """An exact known bug whose merged fix is released in a version newer than the customer's."""
    if bug is None or not (bug.exact_match and bug.fix_merged and bug.fixed_in):
        return False
    row = next((rows[i] for i in bug.evidence_ids if i in rows), None)
    if row is None:
        return False
    current = customer_version(row, intake)
    return bool(current and older_than(current, bug.fixed_in))


def first_known_bug(evidence: Iterable[Evidence]) -> KnownBug | None:
    """Evidence-only mode: the first exact GitHub row whose fix is merged and released."""
    for ev in evidence:
        data = ev.data
        if is_github_row(ev) and data.get("exact_match") and data.get("fix_merged") and data.get("fixed_in"):
            return known_bug_from_row(ev)
    return None
