"""The ``simrec`` command line: generate a shop, run the nightly pipeline, query, serve."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from simrec import logs
from simrec.config import Settings, model_settings
from simrec.core import params as model_params
from simrec.extras import require
from simrec.local.runner import (
    RunLocked,
    Workdir,
    default_run_date,
    failure_summary,
    local_settings,
    prepare,
    print_summary,
    run_pipeline,
    run_warnings,
)
from simrec.serving.server import HEADER_TIMEOUT_SECONDS, PRODUCTION_SERVER, SERVERS


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from None


# --- commands ------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    from simrec.generate import generate_events, write_events

    console = Console(stderr=True)
    with console.status(f"generating {args.events:,} events"):
        events = generate_events(
            args.events, n_users=args.users, n_items=args.items, days=args.days,
            end_date=args.end_date, seed=args.seed,
        )  # fmt: skip
        write_events(events, args.out)
    console.print(
        f"wrote {len(events):,} events, {events['user_id'].nunique():,} users, "
        f"{events['sku'].nunique():,} items to {args.out}"
    )
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from simrec.adapters.warehouse_local import newest_event_date

    console = Console(stderr=True)
    workdir = Workdir(Path(args.workdir).resolve())
    workdir.log.parent.mkdir(parents=True, exist_ok=True)
    events = str(Path(args.events).resolve())
    settings = local_settings(
        workdir,
        events_source=events,
        events_schema=args.schema,
        tenant=args.tenant,
        window_days=args.window_days,
        engine=args.engine,
        catalog_uri=str(Path(args.catalog).resolve()) if args.catalog else None,
        **model_settings(model_params.overrides_from_args(args)),
    )
    today = dt.datetime.now(dt.UTC).date()
    date = args.date or default_run_date(
        newest_event_date(events, settings.events_schema, not_after=today), today
    )
    params = prepare(settings, date)
    try:
        with logs.redirected(str(workdir.log)):
            summary = run_pipeline(
                settings, params, console=console, force=args.force, publish=args.publish
            )
    except RunLocked:
        raise  # another run owns the work folder and its summary: write nothing
    except Exception as exc:
        if getattr(args, "debug", False):
            raise
        summary = failure_summary(settings, params, _one_line(exc))
        if "rows" in summary:
            summary["warnings"] = run_warnings(summary["rows"], {}, not args.date)
        _write_summary(workdir, summary, args.json)
        raise RunFailed(summary["error"]) from exc
    summary["warnings"] = run_warnings(summary["rows"], summary["future_rows"], not args.date)
    _write_summary(workdir, summary, args.json)
    return 0


class RunFailed(Exception):
    """A run failed after its summary was written; the message is the one error line."""


def _one_line(exc: BaseException) -> str:
    """An exception as one line: our own errors as they are, others with their type."""
    from simrec.core.events import SourceError
    from simrec.stages.export import NoValidEvents

    first = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, (SourceError, NoValidEvents, RunLocked, FileNotFoundError, ValueError)):
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def _write_summary(workdir: Workdir, summary: dict, as_json: bool) -> None:
    workdir.summary.write_text(json.dumps(summary, indent=2, sort_keys=True))
    if as_json:
        print(json.dumps(summary, indent=2, sort_keys=True))
    else:
        print_summary(summary, Console())
        Console().print(f"summary: {workdir.summary}   function logs: {workdir.log}",
                        markup=False, highlight=False)  # fmt: skip
    for warning in summary.get("warnings", []):
        Console(stderr=True, soft_wrap=True).print(f"[bold yellow]warning:[/] {escape(warning)}")


def _load_service(workdir: str, tenant: str | None):
    from simrec.serving.api import ServingApp

    settings = local_settings(Workdir(Path(workdir).resolve()), tenant=tenant)
    return ServingApp(settings)


def _print_items(title: str, items: list[dict], key: str = "sku") -> None:
    table = Table(title=title)
    table.add_column("#", justify="right")
    table.add_column(key)
    table.add_column("score", justify="right")
    for rank, item in enumerate(items, 1):
        table.add_row(str(rank), item[key], f"{item['score']:.4f}")
    Console().print(table)


def _endpoint_query(args: argparse.Namespace, path: str) -> dict[str, str]:
    """The endpoint's parameters given on the command line (``_endpoint_options``)."""
    from simrec.serving.parameters import ENDPOINT_PARAMS

    query = {"n": str(args.n)}
    for name in ENDPOINT_PARAMS[path]:
        value = getattr(args, name, None)
        if name not in ("n", "tenant") and value is not None:
            query[name] = value
    return query


def _answer(args: argparse.Namespace, path: str) -> tuple[dict, int | None]:
    """The endpoint's body, and the exit code once it is printed as JSON (asked for with
    ``--json``, or an error); None when the caller prints it as a table."""
    service = _load_service(args.workdir, args.tenant)
    endpoint = service.similar if path == "/similar" else service.recommendations
    body, status = endpoint(_endpoint_query(args, path))
    if args.json or status != 200:
        print(json.dumps(body, indent=2))
        return body, 0 if status == 200 else 1
    return body, None


def cmd_similar(args: argparse.Namespace) -> int:
    body, code = _answer(args, "/similar")
    if code is None:
        title = f"items similar to {args.sku} (model {body['model_version']})"
        _print_items(title, body["items"])
    return code or 0


def cmd_recommend(args: argparse.Namespace) -> int:
    body, code = _answer(args, "/recommendations")
    if code is None:
        suffix = " (fallback: popular items)" if body["fallback"] else ""
        _print_items(f"recommendations (model {body['model_version']}){suffix}", body["items"])
    return code or 0


def _endpoint_options(p: argparse.ArgumentParser, path: str) -> None:
    """One option per parameter of the endpoint, from its declaration
    (``simrec.serving.parameters``): the values go to the endpoint as they are, so they
    are checked by the same rules (a bad one prints the 400 and exits 1)."""
    from simrec.serving.parameters import ENDPOINT_PARAMS, PARAMS

    for name in ENDPOINT_PARAMS[path]:
        param = PARAMS[name]
        if name in ("n", "tenant"):
            continue
        if name == "sku":
            p.add_argument("sku", help=param.description)
        elif param.kind == "flag":
            p.add_argument(f"--{name.replace('_', '-')}", dest=name, nargs="?", const="true",
                           metavar="true|false", help=param.description)  # fmt: skip
        else:
            p.add_argument(f"--{name.replace('_', '-')}", dest=name, help=param.description)


def cmd_serve(args: argparse.Namespace) -> int:
    from simrec.serving.server import serve

    settings = local_settings(Workdir(Path(args.workdir).resolve()), tenant=args.tenant)
    serve(settings, host=args.host, port=args.port, workers=args.workers, threads=args.threads,
          server=args.server, header_timeout=args.header_timeout, access_log=args.access_log)
    return 0


def publish_nightly(project: str, topic: str, payload: dict, publisher=None) -> str:
    """Publish a nightly message on Google Cloud (as the Scheduler does); its message id.

    ``topic``: a short name (in ``project``) or ``projects/<p>/topics/<t>``. The client
    honours ``PUBSUB_EMULATOR_HOST``.
    """
    publisher = publisher or require("google.cloud.pubsub_v1", "gcp").PublisherClient()
    path = topic if topic.startswith("projects/") else publisher.topic_path(project, topic)
    data = json.dumps(payload, sort_keys=True).encode()
    return publisher.publish(path, data, source="simrec-cli").result(timeout=60)


def cmd_cloud_rerun(args: argparse.Namespace) -> int:
    from simrec.local.dispatcher import NIGHTLY_TOPIC
    from simrec.local.runner import nightly_payload

    settings = Settings()
    project = args.project or settings.gcp_project
    topic = args.topic or NIGHTLY_TOPIC
    if not project and not topic.startswith("projects/"):
        raise ValueError("no project: pass --project or set SIMREC_GCP_PROJECT")
    payload = nightly_payload(args.tenant or settings.tenant, args.date, args.force, args.publish)
    message_id = publish_nightly(project, topic, payload)
    Console(stderr=True).print(f"published message {message_id} to {topic}: {json.dumps(payload)}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from simrec.local.demo import run_demo

    return run_demo(Path(args.workdir).resolve(), args.events, serve_forever=args.serve)


# --- parser ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simrec", description="Item-to-item recommendations from shop events."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of failures")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write a deterministic synthetic shop's events")
    p.add_argument("--events", type=_positive_int, default=100_000, help="number of events")
    p.add_argument("--users", type=_positive_int, help="number of users (default: derived)")
    p.add_argument("--items", type=_positive_int, help="number of items (default: derived)")
    p.add_argument("--days", type=_positive_int, default=30, help="days the events span")
    p.add_argument("--end-date", type=_date, default=dt.date(2024, 3, 31), help="last day")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", required=True, help="output file: .csv, .csv.gz or .parquet")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("run", help="run the nightly pipeline on this machine")
    p.add_argument("--events", required=True, help="events file or folder (CSV or Parquet)")
    p.add_argument("--workdir", required=True, help="folder for the bucket, logs, summary")
    p.add_argument("--date", type=_date, help="run date; the window is the --window-days days "
                   "before it (default: the day after the newest event not in the future)")
    p.add_argument("--window-days", type=_positive_int)
    model_params.add_arguments(p)  # one flag per model parameter (--threshold, --top-k, ...)
    p.add_argument("--engine", choices=["spark", "local"], help="similarity engine")
    p.add_argument("--schema", choices=["plain", "ga4"], default="plain")
    p.add_argument("--tenant")
    p.add_argument(
        "--catalog", help="item catalog Parquet (sku, category, in_stock, ...) for the model"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="recompute a run that exists, as a new attempt (the served model stays until "
        "the new one is complete)",
    )
    p.add_argument(
        "--publish",
        action="store_true",
        help="serve this run even if it is an older night than the served model",
    )
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the traceback of a failure")  # fmt: skip
    p.set_defaults(func=cmd_run)

    for name, func, helptext in (
        ("similar", cmd_similar, "items similar to one sku"),
        ("recommend", cmd_recommend, "recommendations for a shopper's recent items"),
    ):
        p = sub.add_parser(name, help=helptext)
        _endpoint_options(p, "/similar" if name == "similar" else "/recommendations")
        p.add_argument("--workdir", required=True)
        p.add_argument("--tenant")
        p.add_argument("--n", type=_positive_int, default=10)
        p.add_argument("--json", action="store_true")
        p.set_defaults(func=func)

    p = sub.add_parser("serve", help="serve the HTTP endpoint from a work folder's model")
    p.add_argument("--workdir", required=True)
    p.add_argument("--tenant")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--workers", type=_positive_int, default=1)
    p.add_argument("--threads", type=_positive_int, default=8, help="gthread only")
    p.add_argument("--server", choices=SERVERS, default=PRODUCTION_SERVER,
                   help="worker model (see simrec/serving/server.py)")
    p.add_argument("--header-timeout", type=float, default=HEADER_TIMEOUT_SECONDS,
                   help="seconds a request's line and headers may take (uvicorn)")
    p.add_argument("--access-log", action="store_true", help="log every request to stdout")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("demo", help="generate a shop, run the pipeline, serve and query")
    p.add_argument("--workdir", default=".demo")
    p.add_argument("--events", type=_positive_int, default=1_000_000)
    p.add_argument(
        "--serve",
        choices=["auto", "yes", "no"],
        default="auto",
        help="keep serving after the demo queries (auto: when run in a terminal)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("cloud", help="operate a Google Cloud deployment")
    cloud = p.add_subparsers(dest="cloud_command", required=True)
    p = cloud.add_parser(
        "rerun",
        help="re-run a night from its first incomplete stage (publishes the nightly message)",
    )
    p.add_argument("--date", type=_date, required=True, help="run date of the night")
    p.add_argument("--tenant", help="default: SIMREC_TENANT")
    p.add_argument(
        "--force", action="store_true",
        help="recompute from the export as a new attempt; the served model stays until the "
        "new one is complete",
    )  # fmt: skip
    p.add_argument(
        "--publish", action="store_true",
        help="serve the night's model even if it is older than the served one",
    )  # fmt: skip
    p.add_argument("--project", help="default: SIMREC_GCP_PROJECT")
    p.add_argument(
        "--topic", help="nightly topic (Terraform output topics.nightly; default simrec-nightly)"
    )
    p.set_defaults(func=cmd_cloud_rerun)

    from simrec.evaluation.commands import add_parsers as add_evaluation_parsers

    add_evaluation_parsers(sub)  # evaluate, tune
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run a command; any failure ends in one ``error:`` line and exit 1 (``--debug``:
    the traceback instead)."""
    args = build_parser().parse_args(argv)
    logs.configure()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        text = str(exc) if isinstance(exc, RunFailed) else _one_line(exc)
        Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {escape(text)}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
