"""The step kinds: what each one's parameters are, and how an automatic step runs.

`check_params` is the one gate every way of writing a step goes through (console, API, YAML):
an unknown parameter, a missing one, or a command not listed in DUTYDESK_RELEASE_COMMANDS is
refused there with a message naming it.
"""

from __future__ import annotations

import datetime as dt
import json
import string
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.db import utcnow
from dutydesk.intake._parse import FAILED_CI, PASSED_CI
from dutydesk.intake.models import InboxItem, Integration, Kind
from dutydesk.people.models import Role
from dutydesk.runbooks.releases.broadcasts import BroadcastError, create_broadcast, end_broadcast
from dutydesk.runbooks.releases.models import (
    Broadcast,
    BroadcastLevel,
    Release,
    StepKind,
    StepRun,
)
from dutydesk.settings import get_settings

# Fields a notify or broadcast text may use, as `{version}`.
TEXT_FIELDS = (
    "version",
    "previous_version",
    "kind",
    "title",
    "template",
    "window",
    "release_url",
)
OUTPUT_LIMIT = 20_000  # characters of a command's output kept on the step
MANUAL_KINDS = frozenset({StepKind.manual.value, StepKind.signoff.value})
# Steps that only talk to the outside world: the job runs them outside any transaction, so a
# long command holds no database lock (SQLite has one for the whole file).
OUTSIDE_KINDS = frozenset({StepKind.http_check.value, StepKind.command.value})


class StepError(ValueError):
    """A step whose parameters are wrong; the message names what is wrong."""


class StepFailed(Exception):
    """An automatic step that did not succeed; the message says what happened."""

    def __init__(self, message: str, output: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.output = output or {}


@dataclass(frozen=True)
class Outcome:
    """What an automatic step produced: done, skipped, or still at work elsewhere."""

    output: dict[str, Any]
    skipped: bool = False
    # The step started something that runs on (a change request's job): it stays running
    # and the release looks again until that has ended.
    waiting: bool = False


# --- parameters ---------------------------------------------------------------------------------

# For each kind: parameter name -> (required, type, default).
_PARAMS: dict[str, dict[str, tuple[bool, type, Any]]] = {
    "manual": {"instructions": (False, str, "")},
    "signoff": {"role": (False, str, "approver"), "count": (False, int, 1)},
    "notify": {
        "list": (True, str, None),
        "subject": (True, str, None),
        "message": (True, str, None),
    },
    "broadcast": {
        "action": (True, str, None),
        "message": (False, str, ""),
        "level": (False, str, "warning"),
    },
    "backup": {"target": (True, str, None), "max_age_minutes": (False, int, 60)},
    "db_change": {"change_id": (False, int, 0)},
    "http_check": {
        "url": (True, str, None),
        "expect_status": (False, int, 200),
        "within_seconds": (False, float, 10.0),
    },
    "ci": {"pipeline": (True, str, None)},
    "command": {"command": (True, str, None), "timeout_seconds": (False, int, 600)},
}


def _text_fields_ok(label: str, text: str) -> None:
    try:
        names = [field for _, field, _, _ in string.Formatter().parse(text) if field is not None]
    except ValueError as error:
        raise StepError(f"{label}: {error} (write {{{{ and }}}} for braces)") from None
    for name in names:
        if name not in TEXT_FIELDS:
            raise StepError(
                f"{label} uses {{{name}}}; the fields a text may use are "
                + ", ".join(f"{{{field}}}" for field in TEXT_FIELDS)
            )


def check_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """The step's parameters checked and completed with defaults; StepError names a fault."""
    if kind not in _PARAMS:
        raise StepError(f"step kind {kind!r} is not one of {', '.join(_PARAMS)}")
    known = _PARAMS[kind]
    unknown = sorted(set(params) - set(known))
    if unknown:
        allowed = ", ".join(known) or "none"
        raise StepError(f"a {kind} step has no parameter {unknown[0]!r} (it takes: {allowed})")
    checked: dict[str, Any] = {}
    for name, (required, kind_type, default) in known.items():
        value = params.get(name)
        if value is None or value == "":
            if required:
                raise StepError(f"a {kind} step needs {name!r}")
            checked[name] = default
            continue
        if kind_type is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind_type is int and isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if kind_type is float and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise StepError(f"{kind} step: {name!r} must be a number") from None
        if not isinstance(value, kind_type) or isinstance(value, bool):
            raise StepError(f"{kind} step: {name!r} must be a {kind_type.__name__}")
        checked[name] = value.strip() if isinstance(value, str) else value
    _check_kind(kind, checked)
    return checked


def _check_kind(kind: str, params: dict[str, Any]) -> None:
    if kind == "signoff":
        if params["role"] not in {role.value for role in Role}:
            raise StepError(f"signoff step: role {params['role']!r} is not a role")
        if not 1 <= params["count"] <= 10:
            raise StepError("signoff step: count must be 1 to 10")
    elif kind == "notify":
        _text_fields_ok("notify step subject", params["subject"])
        _text_fields_ok("notify step message", params["message"])
    elif kind == "broadcast":
        if params["action"] not in {"start", "end"}:
            raise StepError("broadcast step: action is start or end")
        if params["action"] == "start" and not params["message"]:
            raise StepError("a broadcast step that starts a broadcast needs a message")
        if params["level"] not in {level.value for level in BroadcastLevel}:
            raise StepError(f"broadcast step: level {params['level']!r} is not a level")
        _text_fields_ok("broadcast step message", params["message"])
    elif kind == "backup":
        if params["max_age_minutes"] < 1:
            raise StepError("backup step: max_age_minutes must be at least 1")
    elif kind == "http_check":
        if not params["url"].startswith(("http://", "https://")):
            raise StepError("http_check step: url must start with http:// or https://")
        if not 100 <= params["expect_status"] <= 599:
            raise StepError("http_check step: expect_status must be an HTTP status (100-599)")
        if not 0 < params["within_seconds"] <= 120:
            raise StepError("http_check step: within_seconds must be more than 0, at most 120")
    elif kind == "command":
        allowed = get_settings().release_commands
        if params["command"] not in allowed:
            listed = ", ".join(sorted(allowed)) or "none are listed"
            raise StepError(
                f"command {params['command']!r} is not one of the commands an admin listed in "
                f"DUTYDESK_RELEASE_COMMANDS ({listed})"
            )
        if not 1 <= params["timeout_seconds"] <= 3600:
            raise StepError("command step: timeout_seconds must be 1 to 3600")


# --- texts --------------------------------------------------------------------------------------


def release_fields(release: Release) -> dict[str, str]:
    """The fields notify and broadcast texts may use."""
    from dutydesk.runbooks.releases._windows import describe

    base = get_settings().base_url.rstrip("/")
    return {
        "version": release.version,
        "previous_version": release.previous_version or "",
        "kind": "hotfix" if release.patch else "release",
        "title": release.title or f"{release.template.name} {release.version}",
        "template": release.template.name,
        "window": describe(release.window) if release.window else "",
        "release_url": f"{base}/releases/{release.id}",
    }


def fill(text: str, release: Release) -> str:
    """A step's text with the release's fields filled in."""
    return text.format_map(release_fields(release))


# --- running ------------------------------------------------------------------------------------

Runner = Callable[[Session, Release, StepRun, str], Outcome]
_RUNNERS: dict[str, Runner] = {}


def _runner(kind: StepKind) -> Callable[[Runner], Runner]:
    def register(function: Runner) -> Runner:
        _RUNNERS[kind.value] = function
        return function

    return register


def run_automatic(session: Session, release: Release, step: StepRun, actor: str) -> Outcome:
    """Run an automatic step; StepFailed when it did not succeed."""
    return _RUNNERS[step.kind](session, release, step, actor)


@_runner(StepKind.notify)
def _notify(session: Session, release: Release, step: StepRun, actor: str) -> Outcome:
    from dutydesk.notify import service as notify

    try:
        contact_list = notify.get_contact_list(session, step.params["list"])
        deliveries = notify.notify_list(
            session,
            contact_list,
            subject_line=fill(step.params["subject"], release),
            message=fill(step.params["message"], release),
            subject=f"release:{release.id}:step:{step.position}:{step.attempts}",
            reason=f"release {release.template.name} {release.version}: {step.name}",
        )
    except notify.NotifyError as error:
        raise StepFailed(str(error)) from None
    return Outcome(
        {
            "summary": f"{len(deliveries)} notices queued to list {contact_list.name}",
            "deliveries": [delivery.id for delivery in deliveries],
        }
    )


@_runner(StepKind.broadcast)
def _broadcast(session: Session, release: Release, step: StepRun, actor: str) -> Outcome:
    if step.params["action"] == "start":
        # A release shows one broadcast at a time: a new one replaces its earlier one.
        _end_release_broadcasts(session, release, actor)
        try:
            made = create_broadcast(
                session,
                message=fill(step.params["message"], release),
                level=step.params["level"],
                actor=actor,
                release_id=release.id,
            )
        except BroadcastError as error:
            raise StepFailed(str(error)) from None
        return Outcome({"summary": f"broadcast {made.id} started", "broadcast": made.id})
    ended = _end_release_broadcasts(session, release, actor)
    summary = f"ended broadcast {', '.join(map(str, ended))}" if ended else "no broadcast to end"
    return Outcome({"summary": summary, "ended": ended})


def _end_release_broadcasts(session: Session, release: Release, actor: str) -> list[int]:
    now = utcnow()
    ended = []
    for broadcast in session.scalars(select(Broadcast).where(Broadcast.release_id == release.id)):
        if broadcast.ends_at is None or broadcast.ends_at > now:
            end_broadcast(session, broadcast, actor=actor, at=now)
            ended.append(broadcast.id)
    return ended


@_runner(StepKind.backup)
def _backup(session: Session, release: Release, step: StepRun, actor: str) -> Outcome:
    from dutydesk.backups import BackupFailed, ensure_verified_backup

    target = step.params["target"]
    max_age = dt.timedelta(minutes=step.params["max_age_minutes"])
    try:
        backup = ensure_verified_backup(session, target, max_age)
    except BackupFailed as error:
        raise StepFailed(f"no verified backup of {target!r}: {error}") from None
    return Outcome(
        {
            "summary": f"verified backup {backup.id} of {target} taken at "
            f"{backup.started_at.isoformat(timespec='seconds')}",
            "backup": backup.id,
            "sha256": backup.sha256,
            "verified_at": backup.verified_at.isoformat() if backup.verified_at else None,
        }
    )


@_runner(StepKind.db_change)
def _db_change(session: Session, release: Release, step: StepRun, actor: str) -> Outcome:
    from dutydesk.people.models import User
    from dutydesk.runbooks import ChangeRefused, get_change, run_change

    change_id = step.params.get("change_id") or release.inputs.get("db_change_id")
    if not change_id:
        raise StepFailed("no database change named: give the step or the release a change id")
    try:
        change = get_change(session, int(change_id))
    except LookupError as error:
        raise StepFailed(str(error)) from None
    if change.kind != "db_change":
        raise StepFailed(f"change request #{change.id} is a {change.kind}, not a db_change")
    author = session.get(User, release.author_id) if release.author_id else None
    if author is None:
        raise StepFailed("the release has no author (a person) to apply the change as")
    try:
        job_id = run_change(session, change, author)
    except ChangeRefused as error:
        raise StepFailed(f"change request #{change.id}: {error}") from None
    return Outcome(
        {
            "summary": f"change request #{change.id} is being applied (job {job_id})",
            "change": change.id,
            "job": job_id,
        },
        waiting=True,
    )


def applied_change(session: Session, step: StepRun) -> Outcome | None:
    """The outcome of a db_change step once its change request has run; None while it runs."""
    from dutydesk.runbooks import ChangeState, get_change

    change = get_change(session, int(step.output["change"]))
    if change.state == ChangeState.done:
        summary = f"change request #{change.id} applied"
        return Outcome({**step.output, "summary": summary, "result": change.result or {}})
    if change.state in (ChangeState.failed, ChangeState.cancelled, ChangeState.rejected):
        detail = (change.result or {}).get("error", "")
        raise StepFailed(
            f"change request #{change.id} is {change.state}" + (f": {detail}" if detail else ""),
            {**step.output, "result": change.result or {}},
        )
    return None


def run_outside(kind: str, params: dict[str, Any]) -> Outcome:
    """Run an http_check or command step from its parameters alone (no database needed)."""
    return _http_check_of(params) if kind == StepKind.http_check.value else _command_of(params)


@_runner(StepKind.http_check)
def _http_check(session: Session, release: Release, step: StepRun, actor: str) -> Outcome:
    return _http_check_of(step.params)


def _http_check_of(params: dict[str, Any]) -> Outcome:
    url, expected = params["url"], params["expect_status"]
    within = float(params["within_seconds"])
    started = time.monotonic()
    try:
        response = httpx.get(url, timeout=within, follow_redirects=False)
    except httpx.HTTPError as error:
        raise StepFailed(
            f"GET {url} gave no answer within {within:g} s: {error or type(error).__name__}",
            {"url": url},
        ) from None
    seconds = round(time.monotonic() - started, 3)
    output = {"url": url, "status": response.status_code, "seconds": seconds}
    if response.status_code != expected:
        raise StepFailed(f"GET {url} answered {response.status_code}, expected {expected}", output)
    if seconds > within:
        raise StepFailed(f"GET {url} took {seconds} s, more than {within:g} s", output)
    return Outcome({"summary": f"GET {url} answered {expected} in {seconds} s", **output})


@_runner(StepKind.ci)
def _ci(session: Session, release: Release, step: StepRun, actor: str) -> Outcome:
    name = step.params["pipeline"]
    events = pipeline_events(session, [name], limit=1)
    if not events:
        raise StepFailed(f"no event of pipeline {name!r} has come in")
    last = events[0]
    if last["status"] not in PASSED_CI:
        raise StepFailed(
            f"the last event of pipeline {name!r} is {last['status']!r}, not a success", last
        )
    return Outcome({"summary": f"pipeline {name} last passed at {last['at']}", **last})


@_runner(StepKind.command)
def _command(session: Session, release: Release, step: StepRun, actor: str) -> Outcome:
    return _command_of(step.params)


def _command_of(params: dict[str, Any]) -> Outcome:
    name = params["command"]
    argv = get_settings().release_commands.get(name)
    if not argv:
        raise StepFailed(f"command {name!r} is no longer listed in DUTYDESK_RELEASE_COMMANDS")
    try:
        done = subprocess.run(  # noqa: S603 - an argv the admin listed, never a shell string
            argv,
            capture_output=True,
            text=True,
            timeout=params["timeout_seconds"],
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise StepFailed(
            f"command {name!r} ran longer than {params['timeout_seconds']} s and was stopped"
        ) from None
    except OSError as error:
        raise StepFailed(f"command {name!r} could not start: {error}") from None
    output = {
        "argv": argv,
        "exit_code": done.returncode,
        "stdout": done.stdout[-OUTPUT_LIMIT:],
        "stderr": done.stderr[-OUTPUT_LIMIT:],
    }
    if done.returncode != 0:
        raise StepFailed(f"command {name!r} exited with {done.returncode}", output)
    return Outcome({"summary": f"command {name} exited 0", **output})


# --- CI pipeline events -------------------------------------------------------------------------

_CI_KINDS = (Kind.ci.value, Kind.github.value, Kind.gitlab.value)


def _event_of(item: InboxItem, kind: str) -> dict[str, Any] | None:
    """A CI inbox item as (pipeline, status, url), or None when it is not a pipeline event."""
    try:
        body = json.loads(item.body)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    if kind == Kind.github.value:
        run = body.get("workflow_run") or {}
        name, status, url = (
            run.get("name"),
            run.get("conclusion") or run.get("status"),
            run.get("html_url"),
        )
    elif kind == Kind.gitlab.value:
        attributes = body.get("object_attributes") or {}
        name, status, url = attributes.get("name"), attributes.get("status"), attributes.get("url")
    else:
        name, status, url = body.get("pipeline"), body.get("status"), body.get("url")
    if not isinstance(name, str) or not isinstance(status, str):
        return None
    return {
        "inbox_id": item.id,
        "pipeline": name,
        "status": status.strip().lower(),
        "failed": status.strip().lower() in FAILED_CI,
        "url": url if isinstance(url, str) else "",
        "at": item.received_at.isoformat(),
    }


def pipeline_events(
    session: Session,
    names: list[str],
    *,
    since: dt.datetime | None = None,
    limit: int = 50,
    scan: int = 2000,
) -> list[dict[str, Any]]:
    """The latest accepted events of the named CI pipelines, newest first."""
    if not names:
        return []
    query = (
        select(InboxItem, Integration.kind)
        .join(Integration, Integration.id == InboxItem.integration_id)
        .where(Integration.kind.in_(_CI_KINDS), InboxItem.status_code < 300)
        .order_by(InboxItem.received_at.desc(), InboxItem.id.desc())
        .limit(scan)
    )
    if since is not None:
        query = query.where(InboxItem.received_at >= since)
    wanted = set(names)
    found: list[dict[str, Any]] = []
    for item, kind in session.execute(query):
        event = _event_of(item, kind)
        if event is not None and event["pipeline"] in wanted:
            found.append(event)
            if len(found) >= limit:
                break
    return found
