"""`dutydesk release ...` (templates from YAML, windows, plan, start, tick, retry, skip,
rollback, show) and `dutydesk broadcast new | list | end`.

Signing a signoff step and overriding a release window need a person: they are done in the
console or through the API, not from the command line.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dutydesk.commandline import cli_actor, fail, ready_database

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dutydesk.runbooks.releases.models import Release

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

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhd])$")


def parse_until(text: str, now: dt.datetime) -> dt.datetime:
    """An end time from `2h`, `30m`, `1d` or an ISO 8601 time (UTC when it names no zone)."""
    found = _DURATION.match(text.strip().lower())
    if found:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[found[2]]
        return now + dt.timedelta(**{unit: float(found[1])})
    try:
        moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise fail(
            f"--until {text!r} is not a duration (30m, 2h, 1d) or an ISO 8601 time"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


# --- broadcasts ---------------------------------------------------------------------------------


@broadcast_app.command("new")
def broadcast_new(
    message: Annotated[str, typer.Argument(help="What the application's users read.")],
    level: Annotated[str, typer.Option(help="info, warning or critical.")] = "info",
    until: Annotated[
        str | None, typer.Option(help="End after a duration (30m, 2h) or at an ISO 8601 time.")
    ] = None,
) -> None:
    """Start a broadcast now; it shows until --until or until `broadcast end ID`."""
    from dutydesk.db import transaction, utcnow
    from dutydesk.runbooks.releases import broadcasts

    ready_database()
    now = utcnow()
    ends_at = parse_until(until, now) if until else None
    with transaction(actor=cli_actor()) as session:
        try:
            made = broadcasts.create_broadcast(
                session, message=message, level=level, ends_at=ends_at, actor=cli_actor()
            )
        except broadcasts.BroadcastError as error:
            raise fail(str(error)) from None
        ident = made.id
    typer.echo(f"broadcast {ident} started" + (f", until {ends_at.isoformat()}" if ends_at else ""))


@broadcast_app.command("list")
def broadcast_list(
    all_: Annotated[bool, typer.Option("--all", help="Ended ones too.")] = False,
) -> None:
    """The active broadcasts (with --all, the latest of every kind)."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.releases import broadcasts

    ready_database()
    with transaction(actor=cli_actor()) as session:
        shown = (
            broadcasts.list_broadcasts(session) if all_ else broadcasts.active_broadcasts(session)
        )
        lines = [
            f"{b.id}\t{b.level}\t{'active' if broadcasts.is_active(b) else 'ended'}\t"
            f"{b.starts_at.isoformat(timespec='minutes')}\t"
            f"{b.ends_at.isoformat(timespec='minutes') if b.ends_at else '-'}\t{b.message}"
            for b in shown
        ]
    typer.echo("\n".join(lines) if lines else "no broadcasts")


@broadcast_app.command("end")
def broadcast_end(ident: Annotated[int, typer.Argument(help="The broadcast's id.")]) -> None:
    """End a broadcast now."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.releases import broadcasts

    ready_database()
    with transaction(actor=cli_actor()) as session:
        try:
            broadcasts.end_broadcast(
                session, broadcasts.get_broadcast(session, ident), actor=cli_actor()
            )
        except (LookupError, broadcasts.BroadcastError) as error:
            raise fail(str(error)) from None
    typer.echo(f"broadcast {ident} ended")


# --- templates and windows ----------------------------------------------------------------------


@app.command("load")
def load(path: Annotated[Path, typer.Argument(help="A template as YAML.")]) -> None:
    """Make or replace a checklist template from a YAML file (every step is checked first)."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.releases import service

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise fail(f"cannot read {path}: {error.strerror}") from None
    ready_database()
    with transaction(actor=cli_actor()) as session:
        try:
            template = service.load_yaml(session, text, actor=cli_actor())
        except service.ReleaseError as error:
            raise fail(f"{path}: {error}") from None
        name, count = template.name, len(template.steps)
    typer.echo(f"template {name} saved with {count} steps")


@app.command("templates")
def templates() -> None:
    """The checklist templates."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.releases import service

    ready_database()
    with transaction(actor=cli_actor()) as session:
        lines = [f"{t.id}\t{t.name}\t{len(t.steps)} steps" for t in service.list_templates(session)]
    typer.echo("\n".join(lines) if lines else "no templates")


@app.command("export")
def export(name: Annotated[str, typer.Argument(help="Template name or id.")]) -> None:
    """Print a template as YAML (what `release load` takes)."""
    import yaml

    from dutydesk.db import transaction
    from dutydesk.runbooks.releases import service

    ready_database()
    with transaction(actor=cli_actor()) as session:
        try:
            spec = service.template_spec(service.get_template(session, name))
        except service.ReleaseError as error:
            raise fail(str(error)) from None
    typer.echo(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True), nl=False)


@app.command("window")
def window(
    name: Annotated[str, typer.Argument(help="The window's name.")],
    days: Annotated[str, typer.Option(help="Days: mon,tue,... (or 0..6, 0 is Monday).")],
    starts: Annotated[str, typer.Option("--from", help="HH:MM.")],
    ends: Annotated[str, typer.Option("--until", help="HH:MM (at or before --from: next day).")],
    tz: Annotated[str, typer.Option(help="Time zone, such as Europe/Amsterdam.")] = "UTC",
) -> None:
    """Make a weekly release window."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.releases import _windows

    ready_database()
    with transaction(actor=cli_actor()) as session:
        try:
            made = _windows.create_window(
                session,
                name=name,
                days=days,
                starts=starts,
                ends=ends,
                time_zone=tz,
                actor=cli_actor(),
            )
        except _windows.WindowError as error:
            raise fail(str(error)) from None
        said = _windows.describe(made)
    typer.echo(f"release window {said}")


# --- releases -----------------------------------------------------------------------------------


def _show(session: Session, release: Release) -> str:
    lines = [
        f"release {release.id}: {release.template.name} {release.version}"
        f"{' (PATCH: hotfix)' if release.patch else ''} - {release.state}"
    ]
    for step in release.steps:
        flag = " [rollback]" if step.rollback else ""
        said = step.output.get("error") or step.output.get("summary") or step.note
        lines.append(
            f"  {step.position:>2}. {step.state:<8} {step.kind:<10} {step.name}{flag}"
            + (f" - {said}" if said else "")
        )
    return "\n".join(lines)


@app.command("plan")
def plan(
    template: Annotated[str, typer.Argument(help="Template name or id.")],
    version: Annotated[str, typer.Argument(help="Semantic version; a PATCH bump is a hotfix.")],
    title: Annotated[str, typer.Option(help="A title.")] = "",
    window_name: Annotated[str | None, typer.Option("--window", help="Release window.")] = None,
    previous: Annotated[
        str | None, typer.Option(help="The version before (default: the last done release).")
    ] = None,
) -> None:
    """Plan a release of a template."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.releases import service

    ready_database()
    with transaction(actor=cli_actor()) as session:
        try:
            release = service.create_release(
                session,
                service.get_template(session, template),
                version=version,
                title=title,
                window=window_name,
                previous_version=previous,
                author=None,
                actor=cli_actor(),
            )
        except service.ReleaseError as error:
            raise fail(str(error)) from None
        shown = _show(session, release)
    typer.echo(shown)


@app.command("list")
def list_releases() -> None:
    """The latest releases."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.releases import service

    ready_database()
    with transaction(actor=cli_actor()) as session:
        lines = [
            f"{r.id}\t{r.template.name}\t{r.version}\t{r.state}"
            for r in service.list_releases(session, limit=50)
        ]
    typer.echo("\n".join(lines) if lines else "no releases")


@app.command("show")
def show(ident: Annotated[int, typer.Argument(help="The release's id.")]) -> None:
    """A release's steps and timeline."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.releases import service

    ready_database()
    with transaction(actor=cli_actor()) as session:
        try:
            release = service.get_release(session, ident)
        except service.ReleaseError as error:
            raise fail(str(error)) from None
        text = (
            _show(session, release)
            + "\n"
            + "\n".join(
                f"  {e.at.isoformat(timespec='seconds')} {e.actor}: {e.what}"
                for e in service.timeline(session, release)
            )
        )
    typer.echo(text)


def _act(ident: int, action: str, position: int = 0, text: str = "") -> None:
    from dutydesk.db import transaction
    from dutydesk.runbooks.releases import service

    ready_database()
    actor = cli_actor()
    with transaction(actor=actor) as session:
        try:
            release = service.get_release(session, ident)
            if action == "start":
                service.start_release(session, release, actor=actor)
            elif action == "rollback":
                service.rollback(session, release, actor=actor, reason=text)
            elif action == "cancel":
                service.cancel_release(session, release, actor=actor, reason=text)
            elif action == "tick":
                service.tick_step(session, release, position, actor=actor, note=text)
            elif action == "retry":
                service.retry_step(session, release, position, actor=actor)
            else:
                service.skip_step(session, release, position, actor=actor, reason=text)
        except service.ReleaseError as error:
            raise fail(str(error)) from None
        shown = _show(session, release)
    typer.echo(shown)


@app.command("start")
def start(ident: Annotated[int, typer.Argument(help="The release's id.")]) -> None:
    """Start a planned release (its automatic steps run as jobs in the worker)."""
    _act(ident, "start")


@app.command("tick")
def tick(
    ident: Annotated[int, typer.Argument(help="The release's id.")],
    step: Annotated[int, typer.Argument(help="The step's number.")],
    note: Annotated[str, typer.Option(help="What was done.")] = "",
) -> None:
    """Tick a waiting manual step done."""
    _act(ident, "tick", step, note)


@app.command("retry")
def retry(
    ident: Annotated[int, typer.Argument(help="The release's id.")],
    step: Annotated[int, typer.Argument(help="The step's number.")],
) -> None:
    """Run a failed step again."""
    _act(ident, "retry", step)


@app.command("skip")
def skip(
    ident: Annotated[int, typer.Argument(help="The release's id.")],
    step: Annotated[int, typer.Argument(help="The step's number.")],
    reason: Annotated[str, typer.Option(help="Why it is skipped (required).")],
) -> None:
    """Skip a failed, blocked or waiting step, with a reason."""
    _act(ident, "skip", step, reason)


@app.command("rollback")
def rollback(
    ident: Annotated[int, typer.Argument(help="The release's id.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Stop the deploy and run the template's rollback steps."""
    _act(ident, "rollback", text=reason)


@app.command("cancel")
def cancel(
    ident: Annotated[int, typer.Argument(help="The release's id.")],
    reason: Annotated[str, typer.Option(help="Why.")] = "",
) -> None:
    """Stop a release that has not ended."""
    _act(ident, "cancel", text=reason)
