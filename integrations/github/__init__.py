"""GitHub known-bug search, split by job.

- `queries`: public search words from the intake, the privacy filter, query variants.
- `ranking`: scoring search hits against the ticket.
- `client`: HTTP I/O (retries, rate limits, pagination, redirects).
- `fixes`: timeline → fixing PR → first release that shipped it.
- `source`: `GitHubSource`, the ResearchSource that ties them together.
- `offline`: recorded GitHub answered with GitHub's search rules (demo replay and the test fake).
"""

from integrations.github.source import KNOWN_BUG_KEYS, GitHubSource

__all__ = ["KNOWN_BUG_KEYS", "GitHubSource"]
