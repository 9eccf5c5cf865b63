"""`triagebot` — the command line.

demo · triage TICKET | triage - | triage --file PATH · render REPORT.json · schema report · check ·
db upgrade|status · stats [--days N] · eval [CASES_DIR] · run [--http --port P]

`--format json` prints one JSON object for one report and one JSON array for several; `render` reads
either (and JSON Lines).

Bad input gives one clear line on stderr and a non-zero exit, never a traceback (`--debug` shows it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bot.settings import Settings
from triage.models import Ticket, TriageReport
from triage.protocols import ProgressEvent, TriageError

FORMATS = ("text", "json", "blocks", "markdown")
EXIT_USAGE = 2
EXIT_FAIL = 1

_TICKET_RE = re.compile(r"^\s*#?(\d{1,12})\s*$")
_TICKET_URL_RE = re.compile(
    r"^https?://[^\s/]+/(?:agent/tickets|api/v2/tickets|hc/[^/]+/requests)/(\d{1,12})"
)


class UsageError(Exception):
    """Bad input on the command line; the message is shown as is."""


def parse_ticket_ref(text: str) -> int:
    """`48291`, `#48291` or a Zendesk ticket URL → 48291."""
    match = _TICKET_RE.match(text) or _TICKET_URL_RE.match(text.strip())
    if not match:
        raise UsageError(f"not a ticket id or Zendesk ticket URL: {text.strip()[:80]!r}")
    return int(match.group(1))


# ---------------------------------------------------------------- output


def render(report: TriageReport, fmt: str) -> str:
    if fmt == "json":
        return report.model_dump_json(indent=2)
    if fmt == "markdown":
        from formatting.markdown import report_markdown

        return report_markdown(report)
    if fmt == "blocks":
        from formatting.cards import CardState, parent_message, report_messages

        state = CardState(
            ticket=report.ticket,
            run_id=report.run_id,
            status="done",
            product_area=report.product_area_label,
            report=report,
            ticket_url=report.ticket.url,
        )
        payload = {"parent": parent_message(state), "thread": report_messages(report)}
        return json.dumps(payload, indent=2, ensure_ascii=False)
    from formatting.text import report_text

    return report_text(report)


def render_many(reports: list[TriageReport], fmt: str) -> str:
    """One report as `render` does; several: a JSON array (json, blocks) or the texts one after another."""
    if len(reports) == 1:
        return render(reports[0], fmt)
    if fmt in ("json", "blocks"):
        return "[\n" + ",\n".join(render(r, fmt) for r in reports) + "\n]"
    return "\n\n".join(render(r, fmt) for r in reports)


def load_reports(raw: str) -> list[TriageReport]:
    """A report JSON object, a JSON array of them, or JSON Lines (one compact report per line)."""
    text = raw.strip()
    if text.startswith("["):
        items = json.loads(text)
        if not isinstance(items, list) or not items:
            raise ValueError("an empty JSON array")
        return [TriageReport.model_validate(item) for item in items]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and all(line.startswith("{") and line.endswith("}") for line in lines):
        return [TriageReport.model_validate_json(line) for line in lines]
    return [TriageReport.model_validate_json(text)]


def _progress_printer(enabled: bool) -> Any:
    if not enabled:
        return None
    from formatting.text import progress_line

    def show(event: ProgressEvent) -> None:
        line = progress_line(event)
        if line:
            print(line, file=sys.stderr, flush=True)

    return show


DEMO_MODEL_NOTE = {
    "recorded": "no ANTHROPIC_API_KEY, so the model's answers are recorded model answers (set the key for the "
    "live model; --evidence-only for no model)",
    "live": "using the live model (ANTHROPIC_API_KEY is set)",
    "none": "--evidence-only: no model, reports are evidence-only",
}
DEMO_MODEL_LABEL = {"recorded": "recorded model answers", "live": "live model", "none": "evidence-only"}


def _check_drafts_format(args: argparse.Namespace) -> None:
    wants = any(getattr(args, name, False) for name in ("packet", "kb", "reply", "ask"))
    if wants and args.format in ("json", "blocks"):
        raise UsageError(
            "--packet/--kb/--reply/--ask print Markdown: use them with --format text or markdown"
        )


async def _answer(services: Any, report: TriageReport, question: str) -> str:
    """A follow-up question answered like a thread reply in Slack (grounded in the report)."""
    answer = await services.engine.follow_up(report, question)
    cited = f" [{', '.join(answer.evidence_ids)}]" if answer.evidence_ids else ""
    return f"## Follow-up: {question.strip()}\n\n{answer.answer}{cited}"


async def _drafts(services: Any, report: TriageReport, args: argparse.Namespace) -> list[str]:
    from formatting.markdown import kb_markdown, packet_markdown

    out: list[str] = []
    if getattr(args, "packet", False):
        out.append(packet_markdown(await services.engine.escalation_packet(report)))
    if getattr(args, "kb", False):
        out.append(kb_markdown(await services.engine.kb_article(report)))
    if getattr(args, "reply", False):
        draft = await services.engine.reply_draft(report)
        out.append(f"## Draft reply ({draft.language})\n\n{draft.body}")
    return out


# ---------------------------------------------------------------- commands


async def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot.wiring import BundledTicketSource, build_demo_services

    _check_drafts_format(args)
    db = settings.database_url if args.use_database_url else None
    if db is None:
        folder = Path(tempfile.gettempdir()) / "triagebot-demo"
        folder.mkdir(parents=True, exist_ok=True)
        db = f"sqlite:///{folder / 'demo.db'}"
    from bot.wiring import demo_model_kind

    kind = demo_model_kind(settings, args.evidence_only)
    services = build_demo_services(settings, db, evidence_only=args.evidence_only)
    ids = [parse_ticket_ref(t) for t in args.ticket] if args.ticket else BundledTicketSource().ids()
    streaming = args.format in ("text", "markdown")
    reports: list[TriageReport] = []
    try:
        if not args.quiet:
            print(f"demo: {DEMO_MODEL_NOTE[kind]}", file=sys.stderr)
        for ticket_id in ids:
            if not args.quiet:
                print(f"\n▶ triaging demo ticket #{ticket_id} ({DEMO_MODEL_LABEL[kind]})", file=sys.stderr)
            ticket = await services.engine.fetch(ticket_id)
            report = await _triage_stored(services, ticket, f"{ticket.version_key}#demo", args)
            if streaming:
                if kind == "recorded":  # where an evidence-only report says so, say which model answered
                    print("(recorded model answers: set ANTHROPIC_API_KEY for the live model)")
                print(render(report, args.format))
                for extra in await _drafts(services, report, args):
                    print("\n" + extra)
                if args.ask:
                    print("\n" + await _answer(services, report, args.ask))
            reports.append(report)
        if not streaming:
            print(render_many(reports, args.format))
        if not args.quiet:
            print(f"\nreports stored in {db}", file=sys.stderr)
    finally:
        await services.aclose()
    return 0


async def _triage_stored(
    services: Any, ticket: Ticket, version: str, args: argparse.Namespace
) -> TriageReport:
    """Claim a run (always a new one), triage, store the report (or the failure)."""
    claim = await services.store.claim_run(ticket.id, f"{version}-{uuid.uuid4().hex[:8]}", "cli")
    try:
        report: TriageReport = await services.engine.triage(
            ticket, run_id=claim.run.run_id, progress=_progress_printer(not args.quiet)
        )
    except BaseException as exc:
        await services.store.fail_run(claim.run.run_id, type(exc).__name__, token=claim.token)
        raise
    await services.store.finish_run(claim.run.run_id, report, token=claim.token)
    return report


def _read_pasted(args: argparse.Namespace) -> Ticket:
    """The ticket from stdin (`-`) or `--file` (text, .eml, Zendesk JSON); bad input → UsageError."""
    from integrations.pasted import MAX_BYTES, PastedInputError, check_size, kind_for_name, read_ticket

    if args.file:
        path = Path(args.file)
        what = str(path)
        try:
            check_size(path.stat().st_size, what)
            data = path.read_bytes()
        except PastedInputError as exc:
            raise UsageError(str(exc)) from exc
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        kind = kind_for_name(path.name)
    else:
        what = "stdin"
        data = sys.stdin.buffer.read(MAX_BYTES + 1)
        kind = None
    try:
        return read_ticket(
            data,
            what=what,
            kind=kind,
            subject=args.subject,
            requester_email=args.requester_email,
        )
    except PastedInputError as exc:
        raise UsageError(str(exc)) from exc


async def cmd_triage(args: argparse.Namespace, settings: Settings) -> int:
    from bot.wiring import build_services

    _check_drafts_format(args)
    pasted = args.file is not None or args.ticket == "-"
    if args.file is not None and args.ticket is not None:
        raise UsageError("give a ticket id, `-` (stdin) or --file PATH, not both")
    if args.ticket is None and args.file is None:
        raise UsageError("give a ticket id or URL, `-` to read the ticket from stdin, or --file PATH")
    if not pasted and (args.subject or args.requester_email):
        raise UsageError("--subject and --requester-email are for pasted tickets (`-` or --file)")
    if pasted:
        from integrations.pasted import pasted_version

        ticket = _read_pasted(args)
        services = build_services(settings, tickets=None)
        version = pasted_version(ticket)
    else:
        ticket_id = parse_ticket_ref(args.ticket)
        if not settings.zendesk_configured:
            raise UsageError(
                "Zendesk is not configured: set ZENDESK_URL (or ZENDESK_SUBDOMAIN) and ZENDESK_EMAIL + "
                "ZENDESK_API_TOKEN (or ZENDESK_OAUTH_TOKEN); try `triagebot demo` for an offline run, or "
                "`triagebot triage -` to triage pasted text"
            )
        services = build_services(settings)
    try:
        if not pasted:
            ticket = await services.engine.fetch(ticket_id)
            version = f"{ticket.version_key}#cli"
        elif not args.quiet:
            print(f"triaging pasted ticket {ticket.ref} (no Zendesk call)", file=sys.stderr)
        report = await _triage_stored(services, ticket, version, args)
        print(render(report, args.format))
        for extra in await _drafts(services, report, args):
            print("\n" + extra)
        if pasted and not args.quiet:
            print(f"report stored as {ticket.ref} (run {report.run_id})", file=sys.stderr)
    finally:
        await services.aclose()
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    path = Path(args.report)
    try:
        raw = sys.stdin.read() if args.report == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        reports = load_reports(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "document"
        raise UsageError(f"{path} is not a triage report: {where}: {first.get('msg')}") from exc
    except ValueError as exc:
        raise UsageError(f"{path} is not a triage report: {str(exc).splitlines()[0][:200]}") from exc
    print(render_many(reports, args.format))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    if args.what != "report":
        raise UsageError(f"unknown schema {args.what!r}; try `triagebot schema report`")
    print(json.dumps(TriageReport.model_json_schema(), indent=2))
    return 0


async def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    from bot.checks import run_checks

    results = await run_checks(settings)
    failed = 0
    for name, ok, detail in results:
        failed += 0 if ok else 1
        print(f"{'OK  ' if ok else 'FAIL'} {name:<14} {detail}")
    return EXIT_FAIL if failed else 0


def cmd_db(args: argparse.Namespace, settings: Settings) -> int:
    """`db upgrade`: migrate DATABASE_URL to the newest revision; `db status`: where it is."""
    from integrations.schema_migrations import current_revision, head_revision, prepare_schema
    from integrations.store import create_store_engine

    engine = create_store_engine(settings.database_url)
    try:
        if args.action == "status":
            with engine.connect() as conn:
                current = current_revision(conn)
            state = "up to date" if current == head_revision() else "needs `triagebot db upgrade`"
            print(
                f"database revision {current or '(none)'}, this triagebot's newest {head_revision()}: {state}"
            )
            return 0 if current == head_revision() else EXIT_FAIL
        result = prepare_schema(engine, upgrade=True)
    finally:
        engine.dispose()
    if result.stamped_legacy:
        print("pre-Alembic database (schema_version 1) recognised and stamped as revision 0001")
    if result.applied:
        print(
            f"database upgraded from {result.before or '(empty)'} to {result.after}: {', '.join(result.applied)}"
        )
    else:
        print(f"database already at the newest revision {result.after}")
    return 0


async def cmd_stats(args: argparse.Namespace, settings: Settings) -> int:
    from formatting.stats import stats_text
    from integrations.store import SqlStore

    if args.days < 1:
        raise UsageError("--days must be at least 1")
    store = SqlStore.from_url(settings.database_url, migrate=settings.database_auto_migrate)
    try:
        stats = await store.usage_stats(args.days)
    finally:
        await store.close()
    if args.format == "json":
        payload = stats.model_dump(mode="json") | {
            "escalation_rate": stats.escalation_rate,
            "acceptance_rate": stats.acceptance_rate,
            "cache_hit_rate": stats.cache_hit_rate,
            "cost_per_triage": stats.cost_per_triage,
        }
        print(json.dumps(payload, indent=2))
    else:
        print(stats_text(stats))
    return 0


async def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    from bot.evals import EvalError, compare, load_baseline, load_cases, render_json, render_text, run_eval

    try:
        cases = load_cases(args.cases)
        baseline = load_baseline(args.baseline) if args.baseline else None
    except EvalError as exc:
        raise UsageError(str(exc)) from exc
    run = await run_eval(
        settings,
        cases,
        model=args.model,
        sources=args.sources,
        judge=args.judge,
        progress=not args.quiet and args.format == "text",
    )
    diff = compare(run, baseline) if baseline is not None else None
    print(render_json(run, diff) if args.format == "json" else render_text(run, diff))
    return EXIT_FAIL if diff and diff["regressions"] else 0


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.runner import run_bot

    return run_bot(settings, http=args.http, port=args.port, host=args.host, health_port=args.health_port)


# ---------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triagebot", description="Triage support tickets with evidence.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def output(p: argparse.ArgumentParser) -> None:
        p.add_argument("--format", choices=FORMATS, default="text", help="output format (default: text)")

    def drafts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--packet", action="store_true", help="also print the engineering escalation packet")
        p.add_argument("--kb", action="store_true", help="also print a KB article draft")
        p.add_argument("--reply", action="store_true", help="also print the customer reply draft")
        p.add_argument("-q", "--quiet", action="store_true", help="no live progress on stderr")

    p = sub.add_parser("demo", help="triage the bundled example tickets offline")
    p.add_argument("ticket", nargs="*", help="only these example tickets (default: all)")
    p.add_argument(
        "--use-database-url", action="store_true", help="store in DATABASE_URL instead of a temp SQLite"
    )
    p.add_argument(
        "--evidence-only", action="store_true", help="no model: the evidence-only view (no recorded answers)"
    )
    p.add_argument("--ask", metavar="QUESTION", help="also answer a follow-up question about each report")
    output(p)
    drafts(p)

    p = sub.add_parser(
        "triage",
        help="triage one Zendesk ticket (id, #id or URL), or a pasted one: `-` (stdin) or --file PATH",
    )
    p.add_argument(
        "ticket", nargs="?", help="a Zendesk ticket id or URL, or `-` to read the ticket from stdin"
    )
    p.add_argument(
        "--file",
        metavar="PATH",
        help="read the ticket from a file: plain text, an e-mail (.eml) or Zendesk JSON",
    )
    p.add_argument("--subject", help="subject of a pasted ticket (default: its first line, or the e-mail's)")
    p.add_argument(
        "--requester-email", help="requester of a pasted ticket (used for PostHog person look-ups)"
    )
    output(p)
    drafts(p)

    p = sub.add_parser(
        "render", help="render saved report JSON (an object, an array or JSON Lines; - = stdin)"
    )
    p.add_argument("report")
    output(p)

    p = sub.add_parser("schema", help="print a JSON schema (report)")
    p.add_argument("what", nargs="?", default="report")

    sub.add_parser("check", help="one OK/FAIL line per configured integration")

    p = sub.add_parser("db", help="database schema: `db upgrade` applies migrations, `db status` shows them")
    p.add_argument("action", choices=("upgrade", "status"))

    p = sub.add_parser("stats", help="triages, cost, grades, escalations, 👍/👎 and draft use per day")
    p.add_argument("--days", type=int, default=7, help="how many UTC days back, today included (default 7)")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = sub.add_parser("eval", help="run the pipeline over golden cases and score it (offline by default)")
    p.add_argument("cases", nargs="?", help="a folder of golden case JSON files (default: the bundled set)")
    p.add_argument("--judge", action="store_true", help="also grade each root cause with the LLM judge")
    p.add_argument("--baseline", help="an earlier `eval --format json` result: show regressions/improvements")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument(
        "--model",
        choices=("recorded", "live"),
        default="recorded",
        help="recorded answers or the configured model",
    )
    p.add_argument(
        "--sources",
        choices=("recorded", "live"),
        default="recorded",
        help="recorded answers or the configured sources",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = sub.add_parser("run", help="run the Slack bot (Socket Mode if SLACK_APP_TOKEN is set, else --http)")
    p.add_argument(
        "--http", action="store_true", help="serve HTTP: /slack/events, /zendesk/webhook, /healthz"
    )
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument(
        "--health-port",
        type=int,
        default=None,
        help="Socket Mode: also serve GET /healthz and the Zendesk webhook on this port (container probes)",
    )
    return parser


def _configure_logging(settings: Settings | None, debug: bool, command: str) -> None:
    level = (
        logging.DEBUG if debug else getattr(logging, (settings.log_level if settings else "INFO").upper(), 20)
    )
    if command != "run" and not debug:
        level = max(level, logging.WARNING)  # one-shot commands print results, not service logs
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        from triage.redaction import Redactor, SecretFilter

        redactor = Redactor(settings.redact_emails, settings.redact_phones) if settings else None
        for handler in logging.getLogger().handlers:
            handler.addFilter(SecretFilter(redactor))
    except ImportError:  # pragma: no cover
        pass
    if not debug:
        for noisy in ("httpx", "httpx2", "mcp", "zenpy", "slack_bolt", "aiohttp.access"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    settings: Settings | None = None
    try:
        settings = Settings()
        _configure_logging(settings, args.debug, args.command)
        if args.command == "render":
            return cmd_render(args)
        if args.command == "schema":
            return cmd_schema(args)
        if args.command == "run":
            return cmd_run(args, settings)
        if args.command == "db":
            return cmd_db(args, settings)
        handler = {
            "demo": cmd_demo,
            "triage": cmd_triage,
            "check": cmd_check,
            "stats": cmd_stats,
            "eval": cmd_eval,
        }[args.command]
        return asyncio.run(handler(args, settings))
    except UsageError as exc:
        print(f"triagebot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TriageError as exc:
        print(f"triagebot: {exc}", file=sys.stderr)
        return EXIT_FAIL
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        print(f"triagebot: invalid setting {where.upper()}: {first.get('msg')}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("triagebot: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"triagebot: unexpected error: {type(exc).__name__}: {str(exc)[:300]} (rerun with --debug)",
            file=sys.stderr,
        )
        return EXIT_FAIL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
