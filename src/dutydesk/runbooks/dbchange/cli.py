"""`dutydesk dbchange targets add|list|test | new | dry-run ID | apply ID`."""

from __future__ import annotations

import typer

app = typer.Typer(
    rich_markup_mode=None,
    help="Database change scripts: targets, dry runs that roll back, reviewed applies.",
    no_args_is_help=True,
)
targets_app = typer.Typer(
    rich_markup_mode=None, help="Target databases scripts run against.", no_args_is_help=True
)
app.add_typer(targets_app, name="targets")
