"""`dutydesk release ...` and `dutydesk broadcast new | list | end`."""

from __future__ import annotations

import typer

app = typer.Typer(
    rich_markup_mode=None,
    help="Releases: checklist templates, release runs and release windows.",
    no_args_is_help=True,
)
broadcast_app = typer.Typer(
    rich_markup_mode=None,
    help="Broadcasts: messages shown to the application's users and on every console page.",
    no_args_is_help=True,
)
