"""`UsageStats` → the text table `triagebot stats` prints (the Home tab can reuse the same numbers)."""

from __future__ import annotations

from triage.store import UsageStats

GRADES = ("confirmed", "likely", "suspected", "none")


def _pct(part: float) -> str:
    return f"{100 * part:.0f}%"


def stats_text(stats: UsageStats) -> str:
    lines = [f"triagebot stats — last {stats.days} day(s) since {stats.since:%Y-%m-%d} (UTC)", ""]
    lines.append(f"{'day':<12}{'triages':>9}{'evidence-only':>15}{'model calls':>13}{'cost USD':>11}")
    for day in stats.per_day:
        lines.append(
            f"{day.day:<12}{day.triages:>9}{day.evidence_only:>15}{day.model_calls:>13}{day.cost_usd:>11.4f}"
        )
    lines.append(
        f"{'total':<12}{stats.triages:>9}{stats.evidence_only:>15}{stats.model_calls:>13}{stats.cost_usd:>11.4f}"
    )
    lines.append("")
    grades = "  ".join(f"{g} {stats.grades.get(g, 0)}" for g in GRADES)
    lines.append(f"grade mix         {grades}")
    lines.append(f"escalation rate   {_pct(stats.escalation_rate)} ({stats.escalations} of {stats.triages})")
    lines.append(f"feedback          👍 {stats.votes_up}  👎 {stats.votes_down}")
    outcomes = "  ".join(f"{k.replace('_', ' ')} {v}" for k, v in stats.outcomes.items())
    lines.append(
        f"draft acceptance  {_pct(stats.acceptance_rate)} of reports ({stats.runs_with_outcome}); {outcomes}"
    )
    kinds = "  ".join(f"{k} ${v:.4f}" for k, v in stats.cost_by_kind.items()) or "-"
    lines.append(f"cost by kind      {kinds}")
    lines.append(f"cost per triage   ${stats.cost_per_triage:.4f}")
    lines.append(
        f"tokens            in {stats.input_tokens}  out {stats.output_tokens}  cache read "
        f"{stats.cache_read_tokens}  cache write {stats.cache_creation_tokens}  "
        f"(cache hit rate {_pct(stats.cache_hit_rate)})"
    )
    return "\n".join(lines)
