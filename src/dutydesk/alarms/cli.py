"""`dutydesk alarms test RULE [--at TIME] | list | evaluate [RULE] | seed-rules`."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

import typer

from dutydesk.alarms import rules
from dutydesk.commandline import cli_actor, fail, ready_database
from dutydesk.db import transaction

app = typer.Typer(
    rich_markup_mode=None,
    help="Alarm rules: test, list, evaluate, seed the defaults.",
    no_args_is_help=True,
)


def _moment(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise fail(f"--at {text!r} is not an ISO 8601 time such as 2026-11-24T12:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@app.command("test")
def test(
    rule: Annotated[str, typer.Argument(help="Rule name or id.")],
    at: Annotated[
        str | None, typer.Option(help="Evaluate as of this time (ISO 8601, UTC by default).")
    ] = None,
) -> None:
    """Print what the rule decides and the numbers behind it, without firing anything."""
    from dutydesk.alarms.api import try_rule  # the rule kinds load with it (FastAPI, DuckDB)

    ready_database()
    moment = _moment(at)
    with transaction(actor=cli_actor()) as session:
        try:
            found = rules.get_rule(session, rule)
        except rules.RuleNotFound as error:
            raise fail(str(error)) from None
        name = found.name
        decisions = try_rule(session, found, moment)
        session.rollback()  # a test stores nothing
    if not decisions:
        typer.echo(f"{name}: nothing to decide about (no data for this rule yet)")
    for decision in decisions:
        verdict = "FIRING" if decision.firing else "quiet"
        if decision.silenced:
            verdict += " (silenced)"
        where = f" [{decision.instance}]" if decision.instance else ""
        typer.echo(f"{name}{where}: {verdict}")
        typer.echo(f"  {decision.summary}")
        for line in json.dumps(decision.numbers, indent=2, default=str).splitlines():
            typer.echo(f"  {line}")


@app.command("list")
def list_command() -> None:
    """List the rules: name, kind, severity, enabled, firing instances."""
    ready_database()
    with transaction(actor=cli_actor()) as session:
        for rule in rules.list_rules(session):
            state = "enabled" if rule.enabled else "disabled"
            firing = f" firing: {', '.join(map(str, rule.firing))}" if rule.firing else ""
            typer.echo(f"{rule.name}\t{rule.kind}\t{rule.severity}\t{state}{firing}")


@app.command("evaluate")
def evaluate_command(
    rule: Annotated[
        str | None, typer.Argument(help="Rule name or id (default: all enabled).")
    ] = None,
) -> None:
    """Evaluate now and fire or resolve alarms, as the scheduled evaluation does."""
    from dutydesk.alarms.evaluate import evaluate_rule  # the rule kinds load with it (DuckDB)

    ready_database()
    with transaction(immediate=True, actor=cli_actor()) as session:
        try:
            chosen = (
                [rules.get_rule(session, rule)]
                if rule
                else rules.list_rules(session, enabled_only=True)
            )
        except rules.RuleNotFound as error:
            raise fail(str(error)) from None
        for found in chosen:
            for outcome in evaluate_rule(session, found):
                decision = outcome.decision
                typer.echo(
                    f"{found.name} {decision.instance}: {outcome.action}: {decision.summary}"
                )


@app.command("seed-rules")
def seed_rules() -> None:
    """Make the seeded default rules that do not exist yet."""
    ready_database()
    with transaction(immediate=True, actor=cli_actor()) as session:
        made = rules.seed_default_rules(session, cli_actor())
    typer.echo(f"made {len(made)} rules: {', '.join(r.name for r in made) or 'none'}")
