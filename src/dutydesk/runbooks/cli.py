"""`dutydesk changes list | show ID | approve ID | reject ID | run ID | comment ID TEXT | rules`.

Signing, rejecting, running, commenting and changing the rules act as a desk user (`--user`)
who proves it with their password, asked for and never taken from an option: nobody signs for
someone else.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from dutydesk.commandline import cli_actor, desk_user, fail, ready_database

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from dutydesk.people.models import User
    from dutydesk.runbooks.models import ChangeRequest

app = typer.Typer(
    rich_markup_mode=None,
    help="Change requests: list, show, approve, reject, run, comment; signoff rules.",
    no_args_is_help=True,
)
rules_app = typer.Typer(
    rich_markup_mode=None, help="Signoff rules per kind (admins).", no_args_is_help=True
)
app.add_typer(rules_app, name="rules")

UserOption = Annotated[str, typer.Option("--user", "-u", help="Your desk username.")]


def _change(session: Session, change_id: int) -> ChangeRequest:
    from dutydesk.runbooks.service import get_change

    try:
        return get_change(session, change_id)
    except LookupError as error:
        raise fail(str(error)) from None


@app.command("list")
def list_changes(
    state: Annotated[str | None, typer.Option(help="Only requests in this state.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only requests of this kind.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 50,
) -> None:
    """List change requests, newest first."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.models import ChangeState
    from dutydesk.runbooks.service import list_changes as query

    ready_database()
    if state is not None and state not in ChangeState.__members__:
        raise fail(f"unknown state {state!r}; use {', '.join(ChangeState)}")
    with transaction() as session:
        for change in query(session, state=state, kind=kind, limit=limit):
            typer.echo(
                f"#{change.id:<5} {change.kind:<12} {change.state:<10} v{change.data_version:<3} "
                f"{change.author.username:<12} {change.title}"
            )


@app.command("show")
def show(change_id: Annotated[int, typer.Argument(help="The request's number.")]) -> None:
    """Show a request: evidence hash, rules and what is missing, signoffs, timeline."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.service import rules_met, timeline

    ready_database()
    with transaction() as session:
        change = _change(session, change_id)
        met, missing = rules_met(session, change)
        typer.echo(f"#{change.id}  {change.title}")
        typer.echo(
            f"kind={change.kind} state={change.state} data_version={change.data_version} "
            f"author={change.author.username}"
        )
        typer.echo(f"evidence_hash={change.evidence_hash}")
        if change.tracker_url:
            typer.echo(f"tracker: {change.tracker_url}")
        typer.echo("rules met" if met else "missing: " + "; ".join(missing))
        for signoff in change.signoffs:
            counts = "" if signoff in change.active_signoffs else " (dropped)"
            typer.echo(
                f"signoff: {signoff.user.username} ({signoff.role}) v{signoff.data_version} "
                f"{signoff.at:%Y-%m-%d %H:%M}{counts}"
            )
        if change.error:
            typer.echo(f"error: {change.error}")
        typer.echo("timeline:")
        for event in timeline(session, change):
            detail = ", ".join(f"{k}={v}" for k, v in event.detail.items() if v not in (None, []))
            typer.echo(f"  {event.at:%Y-%m-%d %H:%M:%S} {event.actor:<16} {event.kind} {detail}")


def _act(change_id: int, username: str, what: str, act: Callable[..., object]) -> object:
    """Do one action as the user, in one transaction; a refusal is a clear error."""
    from dutydesk.db import transaction
    from dutydesk.runbooks.service import ChangeRefused

    ready_database()
    try:
        with transaction(immediate=True, actor=cli_actor()) as session:
            user = desk_user(session, username)
            return act(session, _change(session, change_id), user)
    except ChangeRefused as error:
        raise fail(f"cannot {what} change #{change_id}: {error}") from None


@app.command("approve")
def approve(
    change_id: Annotated[int, typer.Argument(help="The request's number.")],
    data_version: Annotated[int, typer.Option(help="The version you reviewed (see show).")],
    evidence_hash: Annotated[str, typer.Option(help="The evidence hash you reviewed.")],
    user: UserOption,
    comment: Annotated[str, typer.Option(help="A note with your signoff.")] = "",
) -> None:
    """Sign off the version and evidence you reviewed (as yourself; your password is asked)."""
    from dutydesk.runbooks.service import sign_off

    def act(session: Session, change: ChangeRequest, me: User) -> str:
        sign_off(
            session,
            change,
            me,
            data_version=data_version,
            evidence_hash=evidence_hash,
            comment=comment,
        )
        return change.state

    state = _act(change_id, user, "approve", act)
    typer.echo(f"signed off change #{change_id}; it is {state}")


@app.command("reject")
def reject(
    change_id: Annotated[int, typer.Argument(help="The request's number.")],
    user: UserOption,
    comment: Annotated[str, typer.Option(help="Why (required).")],
) -> None:
    """Reject a pending request, saying why."""
    from dutydesk.runbooks.service import reject_change

    _act(change_id, user, "reject", lambda s, c, me: reject_change(s, c, me, comment=comment))
    typer.echo(f"rejected change #{change_id}")


@app.command("run")
def run(
    change_id: Annotated[int, typer.Argument(help="The request's number.")],
    user: UserOption,
) -> None:
    """Queue the run of an approved request (its author or an operator)."""
    from dutydesk.runbooks.service import run_change

    job_id = _act(change_id, user, "run", run_change)
    typer.echo(f"change #{change_id} queued as job {job_id}")


@app.command("comment")
def comment(
    change_id: Annotated[int, typer.Argument(help="The request's number.")],
    text: Annotated[str, typer.Argument(help="The comment.")],
    user: UserOption,
) -> None:
    """Add a comment to a request's timeline."""
    from dutydesk.runbooks.service import comment_change

    _act(change_id, user, "comment on", lambda s, c, me: comment_change(s, c, me, text))
    typer.echo(f"commented on change #{change_id}")


@rules_app.command("list")
def rules_list() -> None:
    """The signoff rules in force per kind (`default` marks a kind's own)."""
    from dutydesk.db import transaction
    from dutydesk.runbooks._rules import all_rules

    ready_database()
    with transaction() as session:
        for rule in all_rules(session):
            mark = "  default" if rule.default else ""
            typer.echo(f"{rule.kind:<14} {rule.role:<9} {rule.count}{mark}")


def _rule_change(username: str, work: Callable[[Session], object]) -> None:
    from dutydesk.db import transaction
    from dutydesk.runbooks.service import ChangeRefused

    ready_database()
    try:
        with transaction(immediate=True, actor=cli_actor()) as session:
            desk_user(session, username, admin=True)
            work(session)
    except ChangeRefused as error:
        raise fail(str(error)) from None


@rules_app.command("set")
def rules_set(
    kind: Annotated[str, typer.Argument(help="The kind, e.g. redrive.")],
    role: Annotated[str, typer.Argument(help="operator, approver or admin (or higher).")],
    count: Annotated[int, typer.Argument(help="How many signoffs.")],
    user: UserOption,
) -> None:
    """Ask for COUNT signoffs from ROLE (or higher) on KIND (an admin; audited)."""
    from dutydesk.runbooks._rules import set_rule

    _rule_change(user, lambda s: set_rule(s, kind=kind, role=role, count=count))
    typer.echo(f"{kind} now needs {count} signoff(s) from {role} (or higher)")


@rules_app.command("remove")
def rules_remove(
    kind: Annotated[str, typer.Argument(help="The kind.")],
    role: Annotated[str, typer.Argument(help="The rule's role.")],
    user: UserOption,
) -> None:
    """Drop a rule; with none left, the kind's defaults apply (an admin; audited)."""
    from dutydesk.runbooks._rules import remove_rule

    _rule_change(user, lambda s: remove_rule(s, kind=kind, role=role))
    typer.echo(f"removed the {role} rule of {kind}")
