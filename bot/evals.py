"""`triagebot eval`: the full pipeline over golden cases, scored, with an optional LLM judge.

Each case runs the real `TriageEngine` (redaction, intake, research through the real adapters, synthesis,
grading). Offline (the default) the sources answer from the case's recorded answers (PostHog MCP
in-process over MCP, GitHub and npm/PyPI through an httpx replay transport) and the model from the case's
authored answers (`RecordedModel`); `--model live` / `--sources live` use the configured model and
sources instead, so the same cases measure a real setup.

The run is a `pydantic_evals.Dataset` of `Case`s: the deterministic scorers and the judge are
`Evaluator`s, pydantic-evals runs the cases concurrently and shows the progress bar. Its own `LLMJudge`
takes a pydantic-ai model string; ours must go through our `LanguageModel` (provider, budget, recorded
answers offline), so the judge is a custom `Evaluator` with a written rubric (`triage.golden.JUDGE_RUBRIC`).
The table, JSON and baseline comparison are ours (stable, diffable JSON for CI).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError
from pydantic_evals import Case, Dataset
from pydantic_evals.evaluators import EvaluationReason, Evaluator, EvaluatorContext

from bot.settings import Settings
from bot.wiring import build_model, build_sources, replay_sources, triage_config
from integrations.recorded_model import RecordedModel
from triage.engine import TriageEngine
from triage.golden import (
    JUDGE_RUBRIC,
    SCORERS,
    GoldenCase,
    JudgeVerdict,
    Truth,
    judge_prompt,
    score_report,
)
from triage.metering import run_context
from triage.models import TriageReport
from triage.playbooks import load_playbooks, load_sdk_catalogue
from triage.protocols import ConfigError, LanguageModel, LanguageModelError

Mode = Literal["recorded", "live"]


class EvalError(Exception):
    """Bad eval input (cases folder, baseline file); the message is shown as is."""


# ---------------------------------------------------------------- cases


def load_cases(folder: str | None = None) -> list[GoldenCase]:
    """The golden cases in `folder` (default: the bundled set), sorted by id."""
    if folder:
        root = Path(folder)
        if not root.is_dir():
            raise EvalError(f"{folder} is not a folder of golden case JSON files")
        files: list[Any] = sorted(root.glob("*.json"))
    else:
        base = resources.files("triage") / "golden_cases"
        files = sorted((p for p in base.iterdir() if p.name.endswith(".json")), key=lambda p: p.name)
    cases: list[GoldenCase] = []
    for path in files:
        try:
            cases.append(GoldenCase.model_validate_json(path.read_text(encoding="utf-8")))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            raise EvalError(f"{path.name}: {where}: {first.get('msg')}") from exc
    if not cases:
        raise EvalError(f"no golden cases (*.json) in {folder or 'the bundled set'}")
    return cases


# ---------------------------------------------------------------- results


class CaseResult(BaseModel):
    id: str
    scores: dict[str, bool] = Field(default_factory=dict)
    reasons: dict[str, str] = Field(default_factory=dict)
    known_issue_rank: int | None = None
    judge: int | None = None
    judge_reason: str = ""
    grade: str = ""
    mode: str = ""
    cost_usd: float = 0.0
    seconds: float = 0.0
    error: str = ""


class EvalRun(BaseModel):
    model: str
    sources: str
    judge: bool
    cases: list[CaseResult]
    totals: dict[str, float] = Field(default_factory=dict)  # scorer → pass rate; judge → mean
    cost_usd: float = 0.0
    judge_cost_usd: float = 0.0
    seconds: float = 0.0


# ---------------------------------------------------------------- evaluators


@dataclass
class Output:
    report: TriageReport | None
    error: str = ""


@dataclass
class DeterministicScorers(Evaluator[str, Output, Truth]):
    """The eight deterministic scorers of `triage.golden`, one named result each."""

    def evaluate(self, ctx: EvaluatorContext[str, Output, Truth]) -> dict[str, EvaluationReason]:
        if ctx.output.report is None or ctx.metadata is None:
            return {name: EvaluationReason(False, ctx.output.error or "no report") for name in SCORERS}
        return {
            name: EvaluationReason(score.passed, score.reason)
            for name, score in score_report(ctx.output.report, ctx.metadata).items()
        }


@dataclass
class RootCauseJudge(Evaluator[str, Output, Truth]):
    """LLM judge on the 100/65/35/0 scale through our `LanguageModel` (recorded offline, live otherwise)."""

    models: dict[str, LanguageModel]
    costs: dict[str, float]

    async def evaluate(self, ctx: EvaluatorContext[str, Output, Truth]) -> dict[str, EvaluationReason]:
        report = ctx.output.report
        if report is None or ctx.metadata is None:
            return {"judge": EvaluationReason(0, "no report")}
        try:
            with run_context(f"eval-judge-{ctx.inputs}", "eval"):
                result = await self.models[ctx.inputs].complete(
                    purpose="judge",
                    system=[JUDGE_RUBRIC],
                    prompt=judge_prompt(report, ctx.metadata),
                    output_type=JudgeVerdict,
                    max_tokens=400,
                )
        except LanguageModelError as exc:
            return {"judge": EvaluationReason(0, f"judge unavailable: {exc}")}
        self.costs[ctx.inputs] = result.usage.cost_usd
        return {"judge": EvaluationReason(result.output.score, result.output.reason)}


# ---------------------------------------------------------------- running


def _engine(settings: Settings, case: GoldenCase, model: LanguageModel | None, sources: Mode) -> TriageEngine:
    playbooks_dir = settings.playbooks_dir or None
    return TriageEngine(
        tickets=None,
        sources=build_sources(settings) if sources == "live" else replay_sources(recordings=case.recorded),
        model=model,
        playbooks=load_playbooks(playbooks_dir),
        sdk_catalogue=load_sdk_catalogue(playbooks_dir),
        config=triage_config(settings),
    )


async def run_eval(
    settings: Settings,
    cases: list[GoldenCase],
    *,
    model: Mode = "recorded",
    sources: Mode = "recorded",
    judge: bool = False,
    progress: bool = True,
    concurrency: int = 4,
) -> EvalRun:
    live_model: LanguageModel | None = None
    if model == "live":
        live_model = build_model(settings)
        if live_model is None:
            raise ConfigError(
                "--model live needs a configured model (ANTHROPIC_API_KEY or TRIAGE_LLM_PROVIDER)"
            )
    by_id = {c.id: c for c in cases}
    models: dict[str, LanguageModel] = {
        c.id: live_model if live_model is not None else RecordedModel(c.model, model=settings.triage_model)
        for c in cases
    }
    judge_costs: dict[str, float] = {}
    seconds: dict[str, float] = {}

    async def task(case_id: str) -> Output:
        case = by_id[case_id]
        engine = _engine(settings, case, models[case_id], sources)
        started = time.perf_counter()
        try:
            report = await engine.triage(case.ticket, run_id=f"eval-{case_id}")
            return Output(report)
        except Exception as exc:  # one broken case is a failed row, not a failed run
            return Output(None, f"{type(exc).__name__}: {str(exc)[:200]}")
        finally:
            seconds[case_id] = time.perf_counter() - started
            await engine.aclose()

    evaluators: list[Evaluator[str, Output, Truth]] = [DeterministicScorers()]
    if judge:
        evaluators.append(RootCauseJudge(models, judge_costs))
    dataset: Dataset[str, Output, Truth] = Dataset(
        name="golden",
        cases=[Case(name=c.id, inputs=c.id, metadata=c.truth) for c in cases],
        evaluators=evaluators,
    )
    t0 = time.perf_counter()
    report = await dataset.evaluate(
        task, name="triagebot eval", max_concurrency=concurrency, progress=progress
    )
    elapsed = time.perf_counter() - t0
    results = [_case_result(rc, judge_costs, seconds) for rc in report.cases]
    for failure in report.failures:
        results.append(CaseResult(id=failure.name, error=failure.error_message[:200]))
    results.sort(key=lambda r: r.id)
    for result in results:
        if result.id in by_id and result.error == "" and not result.scores:
            result.error = "no scores"
    if live_model is not None:
        await _close(live_model)
    return EvalRun(
        model=model,
        sources=sources,
        judge=judge,
        cases=results,
        totals=_totals(results, judge),
        cost_usd=round(sum(r.cost_usd for r in results), 6),
        judge_cost_usd=round(sum(judge_costs.values()), 6),
        seconds=round(elapsed, 2),
    )


async def _close(model: LanguageModel) -> None:
    closer = getattr(model, "aclose", None)
    if callable(closer):
        await closer()


def _case_result(rc: Any, judge_costs: dict[str, float], seconds: dict[str, float]) -> CaseResult:
    out: Output = rc.output
    result = CaseResult(id=rc.name, seconds=round(seconds.get(rc.name, rc.task_duration), 2), error=out.error)
    for name, res in rc.assertions.items():
        result.scores[name] = bool(res.value)
        result.reasons[name] = res.reason or ""
    judge = rc.scores.get("judge")
    if judge is not None:
        result.judge = int(judge.value)
        result.judge_reason = judge.reason or ""
    if out.report is not None:
        report = out.report
        result.grade = report.confidence.value if report.confidence else "none"
        result.mode = report.mode.value
        result.cost_usd = report.usage.cost_usd
        metadata: Truth = rc.metadata
        from triage.golden import known_issue_rank

        result.known_issue_rank = known_issue_rank(report, metadata)
    result.cost_usd = round(result.cost_usd + judge_costs.get(rc.name, 0.0), 6)
    return result


def _totals(results: list[CaseResult], judge: bool) -> dict[str, float]:
    totals: dict[str, float] = {}
    for name in SCORERS:
        values = [r.scores.get(name, False) for r in results]
        totals[name] = round(sum(values) / len(values), 3) if values else 0.0
    if judge:
        marks = [r.judge for r in results if r.judge is not None]
        totals["judge"] = round(sum(marks) / len(marks), 1) if marks else 0.0
    all_pass = [all(r.scores.get(n, False) for n in SCORERS) for r in results]
    totals["all_scorers"] = round(sum(all_pass) / len(all_pass), 3) if all_pass else 0.0
    return totals


# ---------------------------------------------------------------- baseline and output


SHORT = {
    "area": "area",
    "known_issue": "issue",
    "fixed_in": "fixed",
    "grade_ceiling": "ceil",
    "escalation": "escal",
    "reply_language": "lang",
    "links_in_evidence": "links",
    "no_internal_data": "intern",
}


def load_baseline(path: str) -> EvalRun:
    try:
        return EvalRun.model_validate_json(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise EvalError(f"cannot read baseline {path}: {exc.strerror or exc}") from exc
    except ValidationError as exc:
        raise EvalError(f"{path} is not a `triagebot eval --format json` result") from exc


def compare(run: EvalRun, baseline: EvalRun) -> dict[str, list[str]]:
    """Per case and scorer: what passes now and failed before (improvements) and the reverse (regressions)."""
    before = {c.id: c for c in baseline.cases}
    regressions: list[str] = []
    improvements: list[str] = []
    for case in run.cases:
        old = before.get(case.id)
        if old is None:
            continue
        for name in SCORERS:
            was, now = old.scores.get(name, False), case.scores.get(name, False)
            if was and not now:
                regressions.append(f"{case.id}: {name}")
            elif now and not was:
                improvements.append(f"{case.id}: {name}")
        if case.judge is not None and old.judge is not None and case.judge != old.judge:
            (improvements if case.judge > old.judge else regressions).append(
                f"{case.id}: judge {old.judge} → {case.judge}"
            )
    return {"regressions": regressions, "improvements": improvements}


def render_text(run: EvalRun, diff: dict[str, list[str]] | None = None) -> str:
    names = list(SCORERS)
    head = f"{'case':<28}" + "".join(f"{SHORT[n]:>7}" for n in names)
    head += f"{'rank':>6}{'judge':>7}{'grade':>11}{'cost $':>10}"
    lines = [f"triagebot eval — {len(run.cases)} cases, model {run.model}, sources {run.sources}", "", head]
    for case in run.cases:
        row = f"{case.id[:27]:<28}" + "".join(f"{('✓' if case.scores.get(n) else '✗'):>7}" for n in names)
        rank = str(case.known_issue_rank) if case.known_issue_rank else "-"
        judge = str(case.judge) if case.judge is not None else "-"
        row += f"{rank:>6}{judge:>7}{case.grade or '-':>11}{case.cost_usd:>10.4f}"
        lines.append(row)
        if case.error:
            lines.append(f"    error: {case.error}")
    lines.append("")
    total = f"{'pass rate':<28}" + "".join(f"{100 * run.totals.get(n, 0):>6.0f}%" for n in names)
    lines.append(total)
    summary = f"all scorers pass on {100 * run.totals.get('all_scorers', 0):.0f}% of cases"
    if run.judge:
        summary += f"; judge mean {run.totals.get('judge', 0):.1f} / 100"
    lines.append(summary)
    lines.append(
        f"cost ${run.cost_usd:.4f} (judge ${run.judge_cost_usd:.4f}); {run.seconds:.1f} s"
        + (" — recorded answers: cost is an estimate" if run.model == "recorded" else "")
    )
    if diff is not None:
        lines.append("")
        lines.append(
            f"vs baseline: {len(diff['regressions'])} regressions, {len(diff['improvements'])} improvements"
        )
        lines += [f"  ✗ {item}" for item in diff["regressions"]]
        lines += [f"  ✓ {item}" for item in diff["improvements"]]
    failing = [
        f"  {c.id} {n}: {c.reasons.get(n, '')}" for c in run.cases for n in names if not c.scores.get(n, True)
    ]
    if failing:
        lines.append("")
        lines.append("failures:")
        lines += failing
    return "\n".join(lines)


def render_json(run: EvalRun, diff: dict[str, list[str]] | None = None) -> str:
    payload: dict[str, Any] = run.model_dump(mode="json")
    if diff is not None:
        payload["baseline"] = diff
    return json.dumps(payload, indent=2, ensure_ascii=False)
