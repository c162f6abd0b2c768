"""The intake endpoints: webhooks and heartbeat pings, each authenticated by the secret
token in its URL (no sign-in, no CSRF token: senders are machines)."""

from __future__ import annotations

import hashlib
import hmac
import urllib.parse
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy.orm import Session

from dutydesk.alarms.service import Signal, land_signal
from dutydesk.intake import _parse
from dutydesk.intake._group import group_view, show_group
from dutydesk.intake._heartbeat import MAX_RUN_OUTPUT, handle_ping, ping_body_limit
from dutydesk.intake._parse import Rejected
from dutydesk.intake._payload import Payload, load_payload, storable
from dutydesk.intake._receive import Inbound, Refusal, Reply, batch_note, land, receive
from dutydesk.intake.models import Integration, Kind
from dutydesk.web.access import Principal, TokenInUrl

router = APIRouter()
Hook = Annotated[Principal, Depends(TokenInUrl())]
PING_METHODS = ["GET", "HEAD", "POST"]


def _alertmanager(session: Session, integration: Integration, inbound: Inbound) -> Reply:
    """Each alert judged alone: the good ones land, the bad ones are listed as refused."""
    payload = load_payload(inbound.body)
    signals: list[Signal] = []
    accepted: list[int] = []
    refused: list[Refusal] = []
    problems_of = payload.problems_by_item("alerts")
    for index, judged in enumerate(_parse.alertmanager(integration, payload.value)):
        problems = problems_of.get(index, [])
        if isinstance(judged, Signal) and not problems:
            signals.append(judged)
            accepted.append(index)
            continue
        alert = payload.value["alerts"][index]
        fingerprint = alert.get("fingerprint") if isinstance(alert, dict) else None
        reason = "; ".join(map(str, problems)) if problems else str(judged)
        refused.append(
            Refusal(
                f"alerts[{index}]",
                reason,
                fingerprint[:200] if isinstance(fingerprint, str) else None,
            )
        )
    reply = land(session, signals, refused=refused, repaired=payload.repaired_under(()))
    view = group_view(integration, payload.value, accepted) if signals else None
    if view is not None:
        show_group(session, view, told=reply.ticket_ids)
    return reply


def _one_alert(session: Session, integration: Integration, inbound: Inbound) -> Reply:
    """A generic or OnCall alert: 202 with `alert_id`, `ticket_id` and `is_new`."""
    payload = load_payload(inbound.body)
    parse = _parse.oncall if integration.kind == Kind.oncall.value else _parse.generic
    (signal,) = parse(integration, payload.whole())
    landed = land_signal(session, signal)
    content: dict[str, Any] = {
        "alert_id": landed.alarm_id,
        "ticket_id": landed.ticket_id,
        "is_new": landed.is_new,
    }
    repaired = payload.repaired_under(())
    if repaired:
        content["repaired"] = repaired
    return Reply(
        202,
        content,
        [landed.alarm_id],
        [landed.ticket_id] if landed.ticket_id else [],
        note=batch_note((), repaired),
    )


def _landed_whole(session: Session, signals: list[Signal], payload: Payload) -> Reply:
    """A one-item body's signals landed, with the text repaired in it noted."""
    return land(session, signals, repaired=payload.repaired_under(()))


def _github(session: Session, integration: Integration, inbound: Inbound) -> Reply:
    secret = (integration.signing_secret or "").encode()
    expected = "sha256=" + hmac.new(secret, inbound.body, hashlib.sha256).hexdigest()
    sent = inbound.headers.get("x-hub-signature-256", "")
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        raise Rejected(401, "X-Hub-Signature-256 is missing or does not match the signing secret")
    event = storable(inbound.headers.get("x-github-event", ""))
    payload = load_payload(_github_json(inbound))
    return _landed_whole(session, _parse.github(integration, event, payload.whole()), payload)


GITHUB_CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded")


def _github_json(inbound: Inbound) -> bytes:
    """The JSON of a GitHub delivery: the body itself (`application/json`, or no content type),
    or its `payload` field (`application/x-www-form-urlencoded`, GitHub's default)."""
    header = inbound.headers.get("content-type", "")
    media_type = header.split(";", 1)[0].strip().lower()
    if media_type in ("", "application/json"):
        return inbound.body
    if media_type != "application/x-www-form-urlencoded":
        raise Rejected(
            415,
            f"content type {storable(header)!r} is not one GitHub sends; accepted: "
            + ", ".join(GITHUB_CONTENT_TYPES),
        )
    fields = urllib.parse.parse_qs(inbound.body, keep_blank_values=True)
    found = fields.get(b"payload", [])
    if len(found) != 1:
        raise Rejected(422, "a form-encoded GitHub delivery needs one `payload` field")
    return found[0]


def _gitlab(session: Session, integration: Integration, inbound: Inbound) -> Reply:
    sent = inbound.headers.get("x-gitlab-token", "").encode()
    if not hmac.compare_digest(sent, (integration.signing_secret or "").encode()):
        raise Rejected(401, "X-Gitlab-Token is missing or is not the integration's secret")
    payload = load_payload(inbound.body)
    return _landed_whole(session, _parse.gitlab(integration, payload.whole()), payload)


def _plain_ci(session: Session, integration: Integration, inbound: Inbound) -> Reply:
    payload = load_payload(inbound.body)
    return _landed_whole(session, _parse.plain_ci(integration, payload.whole()), payload)


@router.post("/hooks/alertmanager/{token}")
async def alertmanager_hook(request: Request, token: str, _who: Hook) -> Response:
    """Alertmanager webhook v4: each alert is an alarm by its fingerprint; resolved resolves."""
    return await receive(
        request, source="alertmanager", kinds=("alertmanager",), token=token, handler=_alertmanager
    )


@router.post("/hooks/alertmanager")
async def alertmanager_bearer_hook(request: Request, _who: Hook) -> Response:
    """Alertmanager webhook v4 with the token in `Authorization: Bearer` (the webhook's
    `http_config.authorization`) instead of the URL; checked as the URL's token is."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return await receive(
        request,
        source="alertmanager",
        kinds=("alertmanager",),
        token=token.strip() if scheme.lower() == "bearer" else "",
        handler=_alertmanager,
    )


@router.post("/hooks/generic/{token}")
async def generic_hook(request: Request, token: str, _who: Hook) -> Response:
    """One generic JSON alert; 202 `{"alert_id", "ticket_id", "is_new"}`."""
    return await receive(
        request, source="generic", kinds=("generic",), token=token, handler=_one_alert
    )


@router.post("/hooks/oncall/{token}")
async def oncall_hook(request: Request, token: str, _who: Hook) -> Response:
    """A Grafana OnCall formatted webhook; answered like a generic alert."""
    return await receive(
        request, source="oncall", kinds=("oncall",), token=token, handler=_one_alert
    )


@router.post("/hooks/github/{token}")
async def github_hook(request: Request, token: str, _who: Hook) -> Response:
    """GitHub `workflow_run` events, signed with X-Hub-Signature-256."""
    return await receive(request, source="github", kinds=("github",), token=token, handler=_github)


@router.post("/hooks/gitlab/{token}")
async def gitlab_hook(request: Request, token: str, _who: Hook) -> Response:
    """GitLab pipeline hooks with the secret in X-Gitlab-Token."""
    return await receive(request, source="gitlab", kinds=("gitlab",), token=token, handler=_gitlab)


@router.post("/hooks/ci/{token}")
async def ci_hook(request: Request, token: str, _who: Hook) -> Response:
    """A plain pipeline event (Jenkins and others): `pipeline`, `stage`, `status`, `url`,
    `branch`."""
    return await receive(request, source="ci", kinds=("ci",), token=token, handler=_plain_ci)


def _with_body_limit(response: Response) -> Response:
    """Every ping answer says how much of a ping's body is kept (runitor reads it)."""
    response.headers["Ping-Body-Limit"] = str(ping_body_limit())
    return response


@router.api_route("/ping/{token}", methods=PING_METHODS, include_in_schema=False)
async def ping(request: Request, token: str, _who: Hook) -> Response:
    """A success ping (Healthchecks-compatible)."""
    return await _ping(request, token, action="")


@router.api_route("/ping/{token}/{action}", methods=PING_METHODS, include_in_schema=False)
async def ping_action(request: Request, token: str, action: str, _who: Hook) -> Response:
    """A `start`, `fail` or `log` ping, or an exit status (0 succeeds, others fail)."""
    return await _ping(request, token, action=action)


async def _ping(request: Request, token: str, *, action: str) -> Response:
    """Receive a ping as a heartbeat signal; every answer says how much of a body is kept."""
    return _with_body_limit(
        await receive(
            request,
            source="heartbeat",
            kinds=("heartbeat",),
            token=token,
            handler=handle_ping,
            action=action,
            sample=MAX_RUN_OUTPUT,
        )
    )
