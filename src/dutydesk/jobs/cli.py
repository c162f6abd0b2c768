"""`dutydesk jobs ...`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from dutydesk import registry
from dutydesk.commandline import cli_actor, fail, ready_database
from dutydesk.db import transaction
from dutydesk.jobs import service
from dutydesk.jobs.models import Job, JobState

app = typer.Typer(rich_markup_mode=None, help="Background jobs.", no_args_is_help=True)


def parse_args(pairs: list[str]) -> dict[str, Any]:
    """`key=value` pairs into a dict; values that parse as JSON are taken as JSON."""
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--arg")
        try:
            args[key] = json.loads(value)
        except json.JSONDecodeError:
            args[key] = value
    return args


@app.command("list")
def list_jobs(
    state: Annotated[JobState | None, typer.Option(help="Only jobs in this state.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only jobs of this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """List recent jobs, newest first."""

    ready_database()
    with transaction() as session:
        for job in service.list_jobs(session, state=state, kind=kind, limit=limit):
            error = (job.error or "").strip().splitlines()[-1:] or [""]
            typer.echo(
                f"{job.id:>6} {job.kind:<24} {job.state:<9} {job.attempts}/{job.max_attempts} "
                f"{job.created_at:%Y-%m-%d %H:%M:%S} {error[0][:60]}"
            )


@app.command("kinds")
def kinds() -> None:
    """List the job kinds this installation knows."""
    registry.load_domains()
    for name, function in sorted(registry.job_kinds.items()):
        typer.echo(f"{name:<28} {(function.__doc__ or '').strip().splitlines()[0]}")


@app.command("run")
def run(
    kind: Annotated[str, typer.Argument(help="Job kind (see `dutydesk jobs kinds`).")],
    arg: Annotated[list[str] | None, typer.Option(help="KEY=VALUE argument (repeatable).")] = None,
    queue: Annotated[
        bool, typer.Option(help="Leave the job to the workers instead of running it here.")
    ] = False,
) -> None:
    """Create a job of KIND and run it here (or queue it with --queue)."""

    ready_database()
    registry.load_domains()
    args = parse_args(arg or [])
    try:
        with transaction(actor=cli_actor()) as session:
            # Run here, a job gets no broker message, so no worker races us for it.
            job_id = service.enqueue(session, kind, args, dispatch=queue).id
    except service.JobError as error:
        raise fail(str(error)) from None
    if queue:
        typer.echo(f"queued job {job_id}")
        return
    state = service.execute(job_id, cli_actor())
    with transaction() as session:
        done = session.get(Job, job_id)
        assert done is not None
        typer.echo(
            f"job {job_id} {state}: {json.dumps(done.result) if done.result is not None else ''}"
        )
        if state != JobState.succeeded.value:
            typer.echo(done.error or "", err=True)
            raise typer.Exit(1)
