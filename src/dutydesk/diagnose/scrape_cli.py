"""`dutydesk diagnose scrape-add NAME URL | scrape-list | scrape-now TARGET`: scrape targets."""

from __future__ import annotations

from typing import Annotated

import typer

from dutydesk.commandline import cli_actor, fail, ready_database
from dutydesk.diagnose.cli import app


@app.command("scrape-add")
def scrape_add(
    name: Annotated[str, typer.Argument(help="Unique name (lowercase, digits, . _ -).")],
    url: Annotated[str, typer.Argument(help="Exposition URL: http://host:9100/metrics.")],
    interval: Annotated[int, typer.Option(min=5, max=86_400, help="Seconds between scrapes.")] = 60,
    keep: Annotated[
        list[str] | None,
        typer.Option(help="A metric name to keep (repeat); default: the node exporter's set."),
    ] = None,
    keep_all: Annotated[bool, typer.Option(help="Keep every metric of the endpoint.")] = False,
    label: Annotated[
        list[str] | None, typer.Option(help="name=value added to every series (repeat).")
    ] = None,
) -> None:
    """Register a Prometheus exposition endpoint to scrape into the metric series."""
    ready_database()
    from dutydesk.db import transaction
    from dutydesk.diagnose import scrape
    from dutydesk.diagnose.service import DiagnoseError

    labels: dict[str, str] = {}
    for pair in label or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise fail(f"a label is name=value, not {pair!r}")
        labels[key] = value
    kept = [] if keep_all else (keep or None)
    try:
        with transaction(actor=cli_actor()) as session:
            target = scrape.create_target(
                session,
                name=name,
                url=url,
                actor=cli_actor(),
                interval_seconds=interval,
                keep=kept,
                labels=labels,
            )
            typer.echo(f"added scrape target {target.name} (id {target.id})")
    except DiagnoseError as error:
        raise fail(str(error)) from None


@app.command("scrape-list")
def scrape_list() -> None:
    """List scrape targets with their last scrape and error."""
    ready_database()
    from dutydesk.db import transaction
    from dutydesk.diagnose import scrape

    with transaction() as session:
        for target in scrape.list_targets(session):
            when = target.last_scraped_at.isoformat() if target.last_scraped_at else "never"
            outcome = target.last_error or f"{target.last_series} series"
            typer.echo(
                f"{target.id:<4} {target.name:<20} every {target.interval_seconds:>5} s  "
                f"{target.url}  last {when}: {outcome}"
            )


@app.command("scrape-now")
def scrape_now(target: Annotated[str, typer.Argument(help="Target name or id.")]) -> None:
    """Scrape a target now; exit 1 with its error when it does not answer."""
    ready_database()
    from dutydesk.db import transaction
    from dutydesk.diagnose import scrape
    from dutydesk.diagnose.service import DiagnoseError

    try:
        with transaction(actor=cli_actor()) as session:
            found = scrape.get_target(session, target)
            written = scrape.scrape(session, found)
            error = found.last_error
    except DiagnoseError as problem:
        raise fail(str(problem)) from None
    if error:
        typer.echo(f"scrape of {target} failed: {error}", err=True)
        raise typer.Exit(1)
    typer.echo(f"scraped {target}: {written} series written")
