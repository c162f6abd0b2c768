"""Release checklists: templates (from the console, the API or YAML), release runs worked
through step by step, window overrides, retry, skip and rollback, and the timeline.

Automatic steps run as jobs (`releases.advance`), one step per job, in order; a manual or
signoff step waits for people; a failed step stops the run until someone retries, skips or
rolls back. Every change to these tables is audited; the timeline says what happened in words.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.db import utcnow
from dutydesk.idents import as_id
from dutydesk.people.models import Role, User
from dutydesk.runbooks.releases import _steps, _windows
from dutydesk.runbooks.releases.models import (
    ENDED_STATES,
    Release,
    ReleaseEvent,
    ReleaseState,
    ReleaseTemplate,
    StepKind,
    StepRun,
    StepState,
    TemplateStep,
)
from dutydesk.settings import get_settings

ADVANCE_JOB = "releases.advance"
_SEMVER = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:[-+][0-9A-Za-z.+-]+)?$")
_STEP_KEYS = ("name", "kind", "skip_for_patch", "rollback", "params")
_TEMPLATE_KEYS = ("name", "description", "window", "pipelines", "silence", "steps")


class ReleaseError(ValueError):
    """A release action that cannot be done; `status` is the HTTP answer (403, 404, 409, 422)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


# --- templates ----------------------------------------------------------------------------------


def _step_from_spec(index: int, spec: Any) -> TemplateStep:
    if not isinstance(spec, dict):
        raise ReleaseError(f"step {index}: a step is a mapping with a name and a kind")
    params = dict(spec.get("params") or {})
    # YAML may put a step's parameters beside its name and kind.
    params.update({key: value for key, value in spec.items() if key not in _STEP_KEYS})
    name = str(spec.get("name") or "").strip()
    kind = str(spec.get("kind") or "").strip()
    if not name:
        raise ReleaseError(f"step {index}: a step needs a name")
    try:
        checked = _steps.check_params(kind, params)
    except _steps.StepError as error:
        raise ReleaseError(f"step {index} ({name}): {error}") from None
    flags = {key: spec.get(key, False) for key in ("skip_for_patch", "rollback")}
    for key, value in flags.items():
        if not isinstance(value, bool):
            raise ReleaseError(f"step {index} ({name}): {key} is true or false")
    return TemplateStep(position=index, name=name[:200], kind=kind, params=checked, **flags)


def save_template(session: Session, spec: dict[str, Any], *, actor: str) -> ReleaseTemplate:
    """Make a template from a spec, or replace the one of the same name; every step is
    checked first, so a wrong step changes nothing."""
    if not isinstance(spec, dict):
        raise ReleaseError("a template is a mapping with a name and steps")
    unknown = sorted(set(spec) - set(_TEMPLATE_KEYS))
    if unknown:
        raise ReleaseError(
            f"a template has no field {unknown[0]!r} (it takes: {', '.join(_TEMPLATE_KEYS)})"
        )
    name = str(spec.get("name") or "").strip()
    if not name or len(name) > 100:
        raise ReleaseError("a template needs a name of at most 100 characters")
    raw_steps = spec.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise ReleaseError("a template needs a list of steps")
    steps = [_step_from_spec(index, item) for index, item in enumerate(raw_steps, start=1)]
    pipelines = spec.get("pipelines") or []
    if not isinstance(pipelines, list) or not all(isinstance(p, str) for p in pipelines):
        raise ReleaseError("pipelines is a list of CI pipeline names")
    silence = spec.get("silence") or {}
    if not isinstance(silence, dict):
        raise ReleaseError("silence is a mapping of alarm labels to values")
    window_id = None
    if spec.get("window"):
        try:
            window_id = _windows.get_window(session, str(spec["window"])).id
        except LookupError as error:
            raise ReleaseError(str(error)) from None
    template = session.scalar(select(ReleaseTemplate).where(ReleaseTemplate.name == name))
    if template is None:
        template = ReleaseTemplate(name=name, created_by=actor)
        session.add(template)
    else:
        for old in list(template.steps):
            session.delete(old)  # deleted explicitly, so the audit log records each one
        session.flush()  # the old positions go before the new ones take them
        session.expire(template, ["steps"])
    template.description = str(spec.get("description") or "")
    template.pipelines = [p.strip() for p in pipelines if p.strip()]
    template.silence_matchers = {str(k): str(v) for k, v in silence.items()}
    template.window_id = window_id
    template.updated_at = utcnow()
    template.steps.extend(steps)
    session.flush()
    return template


def load_yaml(session: Session, text: str, *, actor: str) -> ReleaseTemplate:
    """Make or replace a template from YAML text (see docs/runbooks.md for its form)."""
    try:
        spec = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ReleaseError(f"the file is not valid YAML: {error}") from None
    return save_template(session, spec, actor=actor)


def template_spec(template: ReleaseTemplate) -> dict[str, Any]:
    """A template as the spec `save_template` takes (what the YAML export writes)."""
    spec: dict[str, Any] = {"name": template.name}
    if template.description:
        spec["description"] = template.description
    if template.window:
        spec["window"] = template.window.name
    if template.pipelines:
        spec["pipelines"] = list(template.pipelines)
    if template.silence_matchers:
        spec["silence"] = dict(template.silence_matchers)
    spec["steps"] = [
        {
            "name": step.name,
            "kind": step.kind,
            **({"skip_for_patch": True} if step.skip_for_patch else {}),
            **({"rollback": True} if step.rollback else {}),
            **({"params": dict(step.params)} if step.params else {}),
        }
        for step in template.steps
    ]
    return spec


def get_template(session: Session, ident: str | int) -> ReleaseTemplate:
    """A template by id or name; ReleaseError 404 when there is none."""
    text = str(ident)
    number = as_id(text)
    template = (
        session.get(ReleaseTemplate, number)
        if number is not None
        else session.scalar(select(ReleaseTemplate).where(ReleaseTemplate.name == text))
    )
    if template is None:
        raise ReleaseError(f"no release template {text!r}", 404)
    return template


def list_templates(session: Session) -> list[ReleaseTemplate]:
    """Every template by name."""
    return list(session.scalars(select(ReleaseTemplate).order_by(ReleaseTemplate.name)))


# --- versions -----------------------------------------------------------------------------------


def parse_version(version: str) -> tuple[int, int, int]:
    """MAJOR.MINOR.PATCH of a semantic version (`v` prefix, pre-release and build allowed)."""
    found = _SEMVER.match(version.strip())
    if found is None:
        raise ReleaseError(f"version {version!r} is not a semantic version such as 1.4.2")
    return int(found[1]), int(found[2]), int(found[3])


def is_patch(version: str, previous: str | None) -> bool:
    """Whether `version` is a PATCH bump (a hotfix) after `previous`; without a previous
    version, whether its PATCH number is above zero."""
    major, minor, patch = parse_version(version)
    if previous is None:
        return patch > 0
    return (major, minor) == parse_version(previous)[:2] and patch > parse_version(previous)[2]


def last_release(session: Session, template: ReleaseTemplate) -> Release | None:
    """The template's latest release that was done."""
    query = (
        select(Release)
        .where(Release.template_id == template.id, Release.state == ReleaseState.done.value)
        .order_by(Release.id.desc())
    )
    return session.scalars(query.limit(1)).first()


# --- releases -----------------------------------------------------------------------------------


def record(
    session: Session, release: Release, actor: str, what: str, step: StepRun | None = None
) -> None:
    """Add a line to the release's timeline."""
    session.add(
        ReleaseEvent(
            release_id=release.id, actor=actor, what=what, step_id=step.id if step else None
        )
    )
    session.flush()


def create_release(
    session: Session,
    template: ReleaseTemplate,
    *,
    version: str,
    author: User | None,
    actor: str,
    title: str = "",
    previous_version: str | None = None,
    window: str | None = None,
    planned_start: dt.datetime | None = None,
    planned_end: dt.datetime | None = None,
    inputs: dict[str, Any] | None = None,
) -> Release:
    """Plan a release of a template: its steps are copied, and a PATCH release marks the
    steps flagged `skip_for_patch` skipped at once."""
    parse_version(version)
    if previous_version is None:
        before = last_release(session, template)
        previous_version = before.version if before else None
    elif previous_version:
        parse_version(previous_version)
    previous_version = previous_version or None
    if previous_version and parse_version(version) <= parse_version(previous_version):
        raise ReleaseError(
            f"version {version} is not after the previous release {previous_version}"
        )
    if planned_start and planned_end and planned_end <= planned_start:
        raise ReleaseError("the planned end must be after the planned start")
    window_id = template.window_id
    if window:
        try:
            window_id = _windows.get_window(session, window).id
        except LookupError as error:
            raise ReleaseError(str(error)) from None
    patch = is_patch(version, previous_version)
    release = Release(
        template=template,
        version=version.strip(),
        previous_version=previous_version,
        patch=patch,
        title=title.strip()[:300],
        window_id=window_id,
        planned_start=planned_start,
        planned_end=planned_end,
        inputs=dict(inputs or {}),
        author_id=author.id if author else None,
    )
    session.add(release)
    session.flush()
    for step in template.steps:
        skipped = patch and step.skip_for_patch and not step.rollback
        release.steps.append(
            StepRun(
                position=step.position,
                name=step.name,
                kind=step.kind,
                params=dict(step.params),
                rollback=step.rollback,
                state=StepState.skipped.value if skipped else StepState.pending.value,
                note="skipped: a PATCH release (hotfix) skips the change-control steps"
                if skipped
                else "",
            )
        )
    session.flush()
    kind = "PATCH release (hotfix)" if patch else "release"
    record(session, release, actor, f"planned {kind} {release.version} of {template.name}")
    return release


def get_release(session: Session, release_id: int) -> Release:
    """A release by id; ReleaseError 404 when there is none."""
    release = session.get(Release, release_id)
    if release is None:
        raise ReleaseError(f"no release {release_id}", 404)
    return release


def list_releases(session: Session, *, limit: int = 100) -> list[Release]:
    """The latest releases, newest first."""
    return list(session.scalars(select(Release).order_by(Release.id.desc()).limit(limit)))


def timeline(session: Session, release: Release) -> list[ReleaseEvent]:
    """The release's timeline, oldest first."""
    query = (
        select(ReleaseEvent)
        .where(ReleaseEvent.release_id == release.id)
        .order_by(ReleaseEvent.at, ReleaseEvent.id)
    )
    return list(session.scalars(query))


def get_step(release: Release, position: int) -> StepRun:
    """The release's step at `position`; ReleaseError 404 when there is none."""
    for step in release.steps:
        if step.position == position:
            return step
    raise ReleaseError(f"release {release.id} has no step {position}", 404)


def _phase_state(release: Release) -> str:
    rolling = any(step.rollback and step.state != StepState.pending.value for step in release.steps)
    return ReleaseState.rolling_back.value if rolling else ReleaseState.running.value


def _enqueue(session: Session, release: Release) -> None:
    from dutydesk.jobs.service import enqueue

    enqueue(session, ADVANCE_JOB, {"release_id": release.id}, max_attempts=1)


def start_release(session: Session, release: Release, *, actor: str) -> None:
    """Start a planned release: silence its template's alarms and run its first step."""
    if release.state != ReleaseState.planned.value:
        raise ReleaseError(f"release {release.id} is {release.state}, not planned", 409)
    release.state = ReleaseState.running.value
    release.started_at = utcnow()
    if release.template.silence_matchers:
        from dutydesk.alarms.silences import SilenceError, create_silence

        now = utcnow()
        longest = now + dt.timedelta(hours=get_settings().silence_max_hours)
        ends = min(release.planned_end or now + dt.timedelta(hours=4), longest)
        try:
            silence = create_silence(
                session,
                starts_at=now,
                ends_at=max(ends, now + dt.timedelta(minutes=5)),
                reason=f"release {release.template.name} {release.version} is running",
                actor=actor,
                matchers=dict(release.template.silence_matchers),
            )
        except SilenceError as error:
            raise ReleaseError(f"the release's silence cannot be made: {error}") from None
        release.silence_id = silence.id
        record(
            session, release, actor, f"alarms matching {release.template.silence_matchers} silenced"
        )
    record(session, release, actor, "started")
    _enqueue(session, release)


def _finish(session: Session, release: Release, state: ReleaseState, actor: str) -> None:
    release.state = state.value
    release.ended_at = utcnow()
    if state is ReleaseState.done:
        for step in release.steps:
            if step.rollback and step.state == StepState.pending.value:
                step.state = StepState.skipped.value
                step.note = "not needed: the release did not roll back"
    if release.silence_id is not None:
        from dutydesk.alarms.models import Silence
        from dutydesk.alarms.silences import end_silence

        silence = session.get(Silence, release.silence_id)
        if silence is not None and silence.ends_at > utcnow():
            end_silence(session, silence)
            record(session, release, actor, "alarm silence ended")
    record(
        session,
        release,
        actor,
        {"done": "done", "rolled_back": "rolled back"}.get(state.value, state.value),
    )


def next_step(release: Release) -> StepRun | None:
    """The first step of the current phase (deploy or rollback) not yet done or skipped."""
    rolling = release.state == ReleaseState.rolling_back.value
    for step in release.steps:
        if step.rollback == rolling and step.state not in (
            StepState.done.value,
            StepState.skipped.value,
        ):
            return step
    return None


def begin_step(
    session: Session, release: Release, *, actor: str = "release runner"
) -> StepRun | bool:
    """Take the release to its next step. Returns the automatic step it marked running (the
    caller runs it, then `complete_step`), True when the caller may look again at once,
    False when the release waits (for people, a window override, a fix) or is over."""
    if release.state not in (ReleaseState.running.value, ReleaseState.rolling_back.value):
        return False
    attach_failed_pipelines(session, release)
    step = next_step(release)
    if step is None:
        rolled = release.state == ReleaseState.rolling_back.value
        _finish(session, release, ReleaseState.rolled_back if rolled else ReleaseState.done, actor)
        return False
    if step.state == StepState.running.value and step.output.get("change"):
        return _check_applied(session, release, step, actor)
    if step.state != StepState.pending.value:
        return False  # waiting for people, or its job is at work
    if (
        step.kind != StepKind.manual.value
        and release.window is not None
        and not step.override_by
        and not _windows.is_open(release.window)
    ):
        step.state = StepState.blocked.value
        release.state = ReleaseState.blocked.value
        record(
            session,
            release,
            actor,
            f"step {step.position} ({step.name}) refused to start outside the release window "
            f"{_windows.describe(release.window)}; an approver may override with a reason",
            step,
        )
        return False
    step.started_at = utcnow()
    if step.kind in _steps.MANUAL_KINDS:
        step.state = StepState.waiting.value
        record(
            session, release, actor, f"step {step.position} ({step.name}) waits for people", step
        )
        return False
    step.state = StepState.running.value
    step.attempts += 1
    session.flush()
    return step


def complete_step(
    session: Session,
    release: Release,
    step: StepRun,
    result: _steps.Outcome | _steps.StepFailed,
    *,
    actor: str = "release runner",
) -> bool:
    """Record what a running automatic step came to; True when the next may follow at once."""
    if isinstance(result, _steps.StepFailed):
        step.state = StepState.failed.value
        step.output = {"error": str(result), **result.output}
        step.ended_at = utcnow()
        release.state = ReleaseState.failed.value
        record(
            session, release, actor, f"step {step.position} ({step.name}) failed: {result}", step
        )
        return False
    if result.waiting:
        step.output = result.output
        record(
            session,
            release,
            actor,
            f"step {step.position} ({step.name}): {result.output.get('summary', '')}",
            step,
        )
        return False
    step.state = StepState.skipped.value if result.skipped else StepState.done.value
    step.output = result.output
    step.actor = actor
    step.ended_at = utcnow()
    verb = "skipped" if result.skipped else "done"
    summary = result.output.get("summary", "")
    record(session, release, actor, f"step {step.position} ({step.name}) {verb}: {summary}", step)
    return True


def advance(session: Session, release: Release, *, actor: str = "release runner") -> bool:
    """Take the release one step further in this transaction (an automatic step runs here).
    True when the next step may follow at once; False when it waits or is over."""
    began = begin_step(session, release, actor=actor)
    if isinstance(began, bool):
        return began
    try:
        result: _steps.Outcome | _steps.StepFailed = _steps.run_automatic(
            session, release, began, actor
        )
    except _steps.StepFailed as failure:
        result = failure
    return complete_step(session, release, began, result, actor=actor)


def _check_applied(session: Session, release: Release, step: StepRun, actor: str) -> bool:
    """Finish a db_change step whose change request has run; False while it still runs."""
    try:
        outcome = _steps.applied_change(session, step)
    except _steps.StepFailed as failure:
        step.state = StepState.failed.value
        step.output = {**failure.output, "error": str(failure)}
        step.ended_at = utcnow()
        release.state = ReleaseState.failed.value
        record(
            session, release, actor, f"step {step.position} ({step.name}) failed: {failure}", step
        )
        return False
    if outcome is None:
        return False
    step.state = StepState.done.value
    step.output = outcome.output
    step.ended_at = utcnow()
    record(
        session,
        release,
        actor,
        f"step {step.position} ({step.name}) done: {outcome.output['summary']}",
        step,
    )
    return True


def waits_on_a_change(release: Release) -> bool:
    """Whether the release's current step is applying a change request (look again soon)."""
    step = next_step(release)
    return bool(
        step is not None and step.state == StepState.running.value and step.output.get("change")
    )


def _waiting_step(release: Release, position: int, kind: StepKind) -> StepRun:
    step = get_step(release, position)
    if step.kind != kind.value:
        raise ReleaseError(f"step {position} is a {step.kind} step, not {kind.value}", 409)
    if step.state != StepState.waiting.value:
        raise ReleaseError(f"step {position} ({step.name}) is {step.state}, not waiting", 409)
    return step


def tick_step(
    session: Session, release: Release, position: int, *, actor: str, note: str = ""
) -> None:
    """Tick a manual step done, with a note; the run goes on."""
    step = _waiting_step(release, position, StepKind.manual)
    step.state = StepState.done.value
    step.actor = actor
    step.note = note.strip()
    step.ended_at = utcnow()
    said = f": {step.note}" if step.note else ""
    record(session, release, actor, f"step {position} ({step.name}) ticked{said}", step)
    _enqueue(session, release)


def sign_step(
    session: Session, release: Release, position: int, user: User | None, *, comment: str = ""
) -> None:
    """Sign a signoff step: a person with the step's role, not the release's author, once;
    the step is done when enough have signed."""
    step = _waiting_step(release, position, StepKind.signoff)
    if user is None:
        raise ReleaseError("a signoff needs a person, not a token without a user", 403)
    role = Role(step.params.get("role", "approver"))
    if not user.role_enum.includes(role):
        raise ReleaseError(f"signing step {position} needs the {role.value} role", 403)
    if release.author_id == user.id:
        raise ReleaseError(
            "the release's author cannot sign its own step; ask a second person", 403
        )
    if user.username in step.signers:
        raise ReleaseError(f"{user.username} has signed step {position} already", 409)
    step.signers = [*step.signers, user.username]
    said = f": {comment.strip()}" if comment.strip() else ""
    record(session, release, user.username, f"step {position} ({step.name}) signed{said}", step)
    if len(step.signers) >= int(step.params.get("count", 1)):
        step.state = StepState.done.value
        step.actor = ", ".join(step.signers)
        step.note = comment.strip()
        step.ended_at = utcnow()
        record(session, release, user.username, f"step {position} ({step.name}) signed off", step)
        _enqueue(session, release)


def override_window(
    session: Session, release: Release, position: int, user: User | None, *, reason: str
) -> None:
    """An approver lets a step blocked outside the release window start, with a reason."""
    step = get_step(release, position)
    if user is None or not user.role_enum.includes(Role.approver):
        raise ReleaseError("overriding the release window needs an approver", 403)
    if step.state != StepState.blocked.value:
        raise ReleaseError(f"step {position} ({step.name}) is {step.state}, not blocked", 409)
    if not reason.strip():
        raise ReleaseError("an override needs a reason")
    step.override_by = user.username
    step.override_reason = reason.strip()
    step.state = StepState.pending.value
    release.state = _phase_state(release)
    record(
        session,
        release,
        user.username,
        f"window overridden for step {position} ({step.name}): {reason.strip()}",
        step,
    )
    _enqueue(session, release)


def retry_step(session: Session, release: Release, position: int, *, actor: str) -> None:
    """Run a failed step again."""
    step = get_step(release, position)
    if step.state != StepState.failed.value:
        raise ReleaseError(f"step {position} ({step.name}) is {step.state}, not failed", 409)
    step.state = StepState.pending.value
    release.state = _phase_state(release)
    record(session, release, actor, f"step {position} ({step.name}) retried", step)
    _enqueue(session, release)


def skip_step(
    session: Session, release: Release, position: int, *, actor: str, reason: str
) -> None:
    """Skip a failed, blocked or waiting step with a reason; the run goes on. A command or
    HTTP check left running (its worker stopped mid-step) can be skipped too."""
    step = get_step(release, position)
    stuck = step.state == StepState.running.value and step.kind in _steps.OUTSIDE_KINDS
    if not stuck and step.state not in (
        StepState.failed.value,
        StepState.blocked.value,
        StepState.waiting.value,
    ):
        raise ReleaseError(
            f"step {position} ({step.name}) is {step.state}; only a failed, blocked or "
            "waiting step can be skipped",
            409,
        )
    if release.state in {state.value for state in ENDED_STATES}:
        raise ReleaseError(f"release {release.id} is {release.state}", 409)
    if not reason.strip():
        raise ReleaseError("a skip needs a reason")
    step.state = StepState.skipped.value
    step.actor = actor
    step.note = reason.strip()
    step.ended_at = utcnow()
    release.state = _phase_state(release)
    record(
        session, release, actor, f"step {position} ({step.name}) skipped: {reason.strip()}", step
    )
    _enqueue(session, release)


def rollback(session: Session, release: Release, *, actor: str, reason: str = "") -> None:
    """Stop the deploy and run the template's rollback steps, recorded like any step."""
    if release.state not in (
        ReleaseState.failed.value,
        ReleaseState.blocked.value,
        ReleaseState.running.value,
    ):
        raise ReleaseError(f"release {release.id} is {release.state}; it cannot roll back", 409)
    if not any(step.rollback for step in release.steps):
        raise ReleaseError(f"template {release.template.name} has no rollback steps", 409)
    for step in release.steps:
        if not step.rollback and step.state in (
            StepState.pending.value,
            StepState.waiting.value,
            StepState.blocked.value,
        ):
            step.state = StepState.skipped.value
            step.note = "not run: the release rolled back"
    release.state = ReleaseState.rolling_back.value
    said = f": {reason.strip()}" if reason.strip() else ""
    record(session, release, actor, f"rollback started{said}")
    _enqueue(session, release)


def cancel_release(session: Session, release: Release, *, actor: str, reason: str = "") -> None:
    """Stop a release that has not ended; its silence ends."""
    if release.state in {state.value for state in ENDED_STATES}:
        raise ReleaseError(f"release {release.id} is {release.state} already", 409)
    said = f" ({reason.strip()})" if reason.strip() else ""
    record(session, release, actor, f"cancelled{said}")
    _finish(session, release, ReleaseState.cancelled, actor)


# --- pipelines ----------------------------------------------------------------------------------


def release_pipeline_events(session: Session, release: Release) -> list[dict[str, Any]]:
    """The events of the release's pipelines since it started (the last few before, if it
    has not started)."""
    return _steps.pipeline_events(
        session, list(release.template.pipelines), since=release.started_at, limit=30
    )


def attach_failed_pipelines(session: Session, release: Release) -> int:
    """Attach the failed events of the release's pipelines that came in while it ran."""
    if release.started_at is None or not release.template.pipelines:
        return 0
    known = {event.get("inbox_id") for event in release.attached_events}
    end = release.ended_at
    fresh = [
        event
        for event in release_pipeline_events(session, release)
        if event["failed"]
        and event["inbox_id"] not in known
        and (end is None or dt.datetime.fromisoformat(event["at"]) <= end)
    ]
    for event in reversed(fresh):
        release.attached_events = [*release.attached_events, event]
        record(
            session,
            release,
            "release runner",
            f"pipeline {event['pipeline']} {event['status']} while the release ran "
            f"(event {event['inbox_id']}{', ' + event['url'] if event['url'] else ''})",
        )
    return len(fresh)


def running_releases(session: Session) -> list[Release]:
    """Releases that have started and not ended."""
    states = [
        ReleaseState.running.value,
        ReleaseState.rolling_back.value,
        ReleaseState.blocked.value,
        ReleaseState.failed.value,
    ]
    return list(session.scalars(select(Release).where(Release.state.in_(states))))
