"""The ``jobstream`` command: serve, submit, watch, jobs, token."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from jobstream import codec

app = typer.Typer(
    help="Real-time progress for long-running jobs.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err = Console(stderr=True)

ServerOpt = Annotated[
    str, typer.Option("--server", envvar="JOBSTREAM_SERVER", help="Base URL of a jobstream server")
]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="JOBSTREAM_TOKEN", help="Bearer token (jwt mode)")
]


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [default: 127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [default: 8000]")] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Folder for the SQLite file and outputs")
    ] = None,
    allow_insecure_auth: Annotated[
        bool, typer.Option(help="Serve without auth on a non-loopback address")
    ] = False,
    workers: Annotated[
        int | None, typer.Option(help="Embedded worker concurrency (0: none)")
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="critical, error, warning, info, debug or trace")
    ] = "info",
    log_format: Annotated[
        str | None,
        typer.Option(help="text or json: one JSON object per line [env: JOBSTREAM_LOG_FORMAT]"),
    ] = None,
    external_kinds: Annotated[
        str | None,
        typer.Option(
            "--external-kinds",
            help="Comma-separated kinds run by workers outside jobstream over HTTP "
            "[env: JOBSTREAM_EXTERNAL_KINDS]",
        ),
    ] = None,
) -> None:
    """Run the server, embedded workers and web UI (settings also from JOBSTREAM_* variables)."""
    from pydantic import ValidationError
    from uvicorn.config import LOG_LEVELS

    from jobstream.extras import MissingExtra
    from jobstream.server.app import create_app
    from jobstream.server.serve import run
    from jobstream.settings import Settings

    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "host": host,
            "port": port,
            "data_dir": data_dir,
            "workers": workers,
            "log_format": log_format,
            "external_kinds": external_kinds,
        }.items()
        if v is not None
    }
    if allow_insecure_auth:
        overrides["allow_insecure_auth"] = True
    if log_level.lower() not in LOG_LEVELS:
        _error(f"--log-level must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")
        raise typer.Exit(2)
    try:
        settings = Settings(**overrides)
        settings.check()
    except ValidationError as exc:
        _error("; ".join(_setting_error(e) for e in exc.errors()))
        raise typer.Exit(2) from None
    except ValueError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None
    try:
        app = create_app(settings)
    except (MissingExtra, ValueError) as exc:
        _error(str(exc))
        raise typer.Exit(2) from None
    run(settings, app, log_level=log_level)


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Jobs run at once [env: JOBSTREAM_WORKERS; default 4]")
    ] = None,
    kind: Annotated[
        list[str] | None, typer.Option("--kind", help="Run only this kind (repeat for more)")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="The shared folder for job outputs")
    ] = None,
    log_level: Annotated[
        str, typer.Option(help="critical, error, warning, info or debug")
    ] = "info",
    log_format: Annotated[
        str | None,
        typer.Option(help="text or json: one JSON object per line [env: JOBSTREAM_LOG_FORMAT]"),
    ] = None,
    celery: Annotated[
        bool,
        typer.Option(
            "--celery",
            help="Run a Celery worker on JOBSTREAM_CELERY_BROKER_URL (JOBSTREAM_CELERY_QUEUE)",
        ),
    ] = False,
    pool: Annotated[
        str, typer.Option(help="With --celery: the Celery pool, prefork, threads or solo")
    ] = "prefork",
) -> None:
    """Run jobs from the store's queue, without HTTP (the store and bus of JOBSTREAM_* settings);
    with --celery, the jobs Celery delivers."""
    import logging.config

    from pydantic import ValidationError

    from jobstream.extras import MissingExtra
    from jobstream.server.logs import install_log_redaction, log_config
    from jobstream.settings import Settings
    from jobstream.worker.process import run_worker

    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "workers": concurrency,
            "data_dir": data_dir,
            "log_format": log_format,
        }.items()
        if v is not None
    }
    levels = {"critical", "error", "warning", "info", "debug"}
    if log_level.lower() not in levels:
        _error(f"--log-level must be one of {', '.join(sorted(levels))}, not {log_level!r}")
        raise typer.Exit(2)
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        _error("; ".join(_setting_error(e) for e in exc.errors()))
        raise typer.Exit(2) from None
    logging.config.dictConfig(
        log_config(settings.log_format, logging.getLevelName(log_level.upper()))
    )
    install_log_redaction()
    if celery:
        _celery_worker(settings, pool, concurrency, log_level, kind)
        return
    try:
        asyncio.run(run_worker(settings, kinds=kind or None))
    except (MissingExtra, ValueError) as exc:
        _error(str(exc))
        raise typer.Exit(2) from None


def _celery_worker(
    settings: Any, pool: str, concurrency: int | None, log_level: str, kind: list[str] | None
) -> None:
    if kind:
        _error("--kind does not apply with --celery: every kind's jobs come on one queue")
        raise typer.Exit(2)
    if not settings.celery_broker_url:
        _error("--celery needs JOBSTREAM_CELERY_BROKER_URL (amqp://… or redis://…)")
        raise typer.Exit(2)
    try:
        from jobstream.celery import check_pool, run_celery_worker
    except ImportError:
        _error("--celery needs Celery, which is not installed: pip install 'jobstream[celery]'")
        raise typer.Exit(2) from None
    try:
        check_pool(pool)
    except ValueError as exc:
        _error(str(exc))
        raise typer.Exit(2) from None
    run_celery_worker(settings, pool=pool, concurrency=concurrency, log_level=log_level)


def _setting_error(error: Any) -> str:
    """``JOBSTREAM_LOG_FORMAT: Input should be 'text' or 'json'``"""
    name = "JOBSTREAM_" + "_".join(str(part) for part in error["loc"]).upper()
    return f"{name}: {error['msg']}"


def _error(message: str) -> None:
    """One plain line on stderr: no markup, no wrapping at the terminal's width."""
    typer.echo(f"jobstream: {message}", err=True)


def _params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected key=value, got {pair!r}", param_hint="--param")
        try:
            params[key] = codec.loads(raw)
        except ValueError:
            params[key] = raw
    return params


def _client(server: str, token: str | None) -> Any:
    from jobstream.client import JobstreamClient

    if not server.startswith(("http://", "https://")):
        _error(f"--server must be an http:// or https:// URL, not {server!r}")
        raise typer.Exit(2)
    return JobstreamClient(server, token=token)


def _fail(exc: Exception) -> typer.Exit:
    from jobstream.client import ServerUnreachable

    if isinstance(exc, ServerUnreachable):
        _error(f"{exc}; is `jobstream serve` running? use --server or JOBSTREAM_SERVER")
    else:
        _error(str(exc))
    return typer.Exit(1)


@app.command()
def submit(
    kind: Annotated[str, typer.Argument(help="Job kind, e.g. video, pdf, task")],
    param: Annotated[
        list[str] | None, typer.Option("--param", "-p", help="key=value (value may be JSON)")
    ] = None,
    watch_: Annotated[bool, typer.Option("--watch", help="Follow it until it ends")] = False,
    server: ServerOpt = "http://127.0.0.1:8000",
    token: TokenOpt = None,
) -> None:
    """Submit a job and print its id."""
    from jobstream.client import ClientError

    params = _params(param or [])

    async def go() -> str:
        async with _client(server, token) as client:
            job: dict[str, Any] = await client.submit(kind, params)
            return str(job["id"])

    try:
        job_id = asyncio.run(go())
    except ClientError as exc:
        raise _fail(exc) from None
    console.print(job_id)
    if watch_:
        watch(job_id, server=server, token=token)


# A job id may start with "-" (ids are URL-safe base64): taken as the id, not as an option.
@app.command(context_settings={"ignore_unknown_options": True})
def watch(
    job_id: Annotated[str, typer.Argument(help="The job to follow")],
    server: ServerOpt = "http://127.0.0.1:8000",
    token: TokenOpt = None,
) -> None:
    """Follow a job with a live progress bar (resumes after a dropped connection)."""
    from jobstream.client import ClientError

    outcome: dict[str, Any] = {}

    async def go() -> None:
        columns = (
            TextColumn("[bold]{task.fields[status]:<9}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[step]}"),
            TextColumn("[dim]{task.fields[eta]}"),
            TimeElapsedColumn(),
        )
        async with _client(server, token) as client:
            # Fails at once, in one line, when the server is unreachable or the job unknown.
            job = await client.get(job_id)
            outcome["download"] = client.url(job["links"]["result"])
            with Progress(*columns, console=console, transient=False) as bar:
                task = bar.add_task(job_id, total=100, status="…", step="", eta="")
                # From the first event: the whole log so far, then live (the log is bounded).
                async for event in client.follow(job_id, last_event_id=0):
                    data = event.data.get("data", event.data)
                    if event.event == "snapshot":
                        _show(bar, task, data, data.get("status", ""))
                        outcome.update(data)
                    elif event.event == "progress":
                        _show(bar, task, data, None)
                    elif event.event == "status_change":
                        bar.update(task, status=data.get("new_status", ""))
                        if data.get("reason"):
                            bar.console.print(
                                f"[yellow]{data['new_status']}[/yellow]: {data['reason']}"
                            )
                    elif event.event == "log":
                        bar.console.print(
                            f"[dim]{data.get('level', 'info')}[/dim] {data.get('message')}"
                        )
                    elif event.event in ("completed", "failed", "cancelled"):
                        done = 100 if event.event == "completed" else None
                        bar.update(task, status=event.event, eta="", completed=done)
                        outcome.update({"status": event.event, **data})

    try:
        asyncio.run(go())
    except ClientError as exc:
        raise _fail(exc) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    status = outcome.get("status")
    if status == "completed":
        result = codec.dumps_str(outcome.get("result"))
        console.print(f"[green]completed[/green] {escape(result)}", soft_wrap=True)
        console.print(f"download: {outcome['download']}", soft_wrap=True, highlight=False)
    elif status in ("failed", "cancelled"):
        message = outcome.get("message") or outcome.get("error")
        console.print(f"[red]{status}[/red]: {escape(str(message))}", soft_wrap=True)
        raise typer.Exit(1)


def _show(bar: Progress, task: Any, data: dict[str, Any], status: str | None) -> None:
    step = ""
    if data.get("total_steps"):
        step = f"{data.get('current_step')}/{data['total_steps']} {data.get('step_name') or ''}"
    elif data.get("state"):
        step = str(data["state"])
    eta = data.get("eta_seconds")
    fields: dict[str, Any] = {"step": step, "eta": f"ETA {eta:.0f}s" if eta else ""}
    if status:
        fields["status"] = status
    bar.update(task, completed=float(data.get("progress") or 0), **fields)


@app.command()
def jobs(
    status: Annotated[str | None, typer.Option(help="Only jobs in this status")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind")] = None,
    limit: Annotated[int, typer.Option(help="How many", min=1, max=200)] = 20,
    cursor: Annotated[
        str | None, typer.Option(help="Continue a listing: the next_cursor it ended with")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the page as JSON: {items, next_cursor}")
    ] = False,
    server: ServerOpt = "http://127.0.0.1:8000",
    token: TokenOpt = None,
) -> None:
    """List your jobs, newest first."""
    from jobstream.client import ClientError

    async def go() -> dict[str, Any]:
        async with _client(server, token) as client:
            page: dict[str, Any] = await client.list(
                status=status, kind=kind, limit=limit, cursor=cursor
            )
            return page

    try:
        page = asyncio.run(go())
    except ClientError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(codec.dumps_str(page))
        return
    # Ids are what people copy into ``watch``: no column is cut, wrapped or shortened, whatever
    # the terminal's width (80 when piped), but the step, which gives way.
    rows = []
    for job in page["items"]:
        step = ""
        if job.get("total_steps"):
            step = f"{job['current_step']}/{job['total_steps']} {job.get('step_name') or ''}"
        progress = f"{job['progress']:.0f}%"
        rows.append(
            (job["id"], job["kind"], job["status"], progress, _when(job["created_at"]), step)
        )
    table = Table(box=None, pad_edge=False, header_style="bold")
    headers = ("id", "kind", "status", "progress", "created")
    for i, header in enumerate(headers):
        width = max([len(header), *(len(row[i]) for row in rows)])
        justify: Any = "right" if header == "progress" else "left"
        table.add_column(header, no_wrap=True, min_width=width, justify=justify)
    table.add_column("step", no_wrap=True, overflow="ellipsis")
    for row in rows:
        table.add_row(*row[:-1], escape(row[-1]))
    console.print(table, crop=False)
    if page.get("next_cursor"):
        console.print(f"more: --cursor {page['next_cursor']}", soft_wrap=True, highlight=False)


def _when(iso: str) -> str:
    """``2026-11-23T10:00:00.123Z`` -> ``2026-11-23 10:00:00`` (UTC, as the server sends it)."""
    return iso.replace("T", " ")[:19]


@app.command()
def token(
    sub: Annotated[str, typer.Option("--sub", help="The user (JWT subject)")],
    role: Annotated[
        list[str] | None, typer.Option("--role", help="A role: admin, reporter")
    ] = None,
    ttl: Annotated[float, typer.Option(help="Lifetime in seconds")] = 86400.0,
) -> None:
    """Mint a development token with JOBSTREAM_JWT_SECRET."""
    from jobstream.server.auth import Authenticator
    from jobstream.settings import Settings

    if not os.environ.get("JOBSTREAM_JWT_SECRET"):
        err.print("[red]set JOBSTREAM_JWT_SECRET to the server's secret first[/red]")
        raise typer.Exit(2)
    settings = Settings(auth="jwt")
    console.print(Authenticator(settings).mint(sub, role or [], ttl), soft_wrap=True)


def main() -> None:
    app(prog_name="jobstream")


if __name__ == "__main__":  # pragma: no cover
    main()
