"""`dutydesk review show [--week W] [--markdown]`."""

from __future__ import annotations

from typing import Annotated

import typer

from dutydesk.commandline import fail, ready_database

app = typer.Typer(
    rich_markup_mode=None,
    help="The weekly review: its agenda from the desk's data.",
    no_args_is_help=True,
)


@app.command("show")
def show(
    week: Annotated[
        str | None,
        typer.Option(help="An ISO week such as 2026-W49 (default: since the last review)."),
    ] = None,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print Markdown.")] = False,
) -> None:
    """Print the review's sections, as the Review page shows them."""
    from dutydesk.db import transaction
    from dutydesk.review import service

    ready_database()
    with transaction() as session:
        try:
            period = service.period_for(session, week)
        except service.ReviewError as error:
            raise fail(str(error)) from None
        text = service.to_markdown(period, service.agenda(session, period))
    if not markdown:
        text = "\n".join(
            line.lstrip("#- ").rstrip() if line.startswith("#") else line
            for line in text.splitlines()
        )
    typer.echo(text)
