"""The Sentry-compatible endpoints: events grouped into exception groups that open tickets,
envelopes with compressed bodies, and every refusal a 4xx that names what was wrong."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk.diagnose.models import ExceptionEvent, ExceptionGroup
from dutydesk.settings import get_settings
from dutydesk.tickets.models import Ticket
from tests.diagnose.conftest import auth, envelope, event, event_item, make_project


def groups(db: Session) -> list[ExceptionGroup]:
    db.expire_all()
    return list(db.scalars(select(ExceptionGroup).order_by(ExceptionGroup.id)))


def tickets(db: Session) -> list[Ticket]:
    db.expire_all()
    return list(db.scalars(select(Ticket).where(Ticket.source == "exceptions")))


def test_same_exception_twice_is_one_group_with_one_ticket_and_another_makes_a_second(
    client: TestClient, db: Session
) -> None:
    project = make_project(db)
    store = f"/api/{project.id}/store/"
    first = client.post(store, json=event(), headers=auth(project))
    assert first.status_code == 200, first.text
    assert len(first.json()["id"]) == 32
    assert client.post(store, json=event(), headers=auth(project)).status_code == 200
    other = event("KeyError", "'sku'", "price = prices[sku]")
    assert client.post(store, json=other, headers=auth(project)).status_code == 200
    made = groups(db)
    assert [(g.title, g.count) for g in made] == [
        ("ValueError: bad input", 2),
        ("KeyError: 'sku'", 1),
    ]
    assert made[0].culprit == "shop.views in checkout"
    opened = tickets(db)
    assert len(opened) == 2
    assert sorted(t.occurrences for t in opened) == [1, 2]
    assert any(t.title == "[shop] ValueError: bad input" for t in opened)


def test_the_sdks_fingerprint_groups_events_the_default_would_split(
    client: TestClient, db: Session
) -> None:
    project = make_project(db)
    store = f"/api/{project.id}/store/"
    for line in ("a = 1 / 0", "b = 2 / 0"):
        body = event("ZeroDivisionError", "division by zero", line, fingerprint=["divisions"])
        assert client.post(store, json=body, headers=auth(project)).status_code == 200
    for line in ("c = 3 / 0", "d = 4 / 0"):
        body = event("ZeroDivisionError", "x", line, fingerprint=["{{ default }}", "eu"])
        assert client.post(store, json=body, headers=auth(project)).status_code == 200
    assert [g.count for g in groups(db)] == [2, 1, 1]


def test_key_in_the_query_string_is_accepted_and_a_wrong_or_missing_key_gets_401(
    client: TestClient, db: Session
) -> None:
    project = make_project(db)
    other = make_project(db, "other")
    store = f"/api/{project.id}/store/"
    assert client.post(f"{store}?sentry_key={project.public_key}", json=event()).status_code == 200
    wrong = client.post(store, json=event(), headers=auth(project, key=other.public_key))
    assert wrong.status_code == 401
    assert "not its own" in wrong.json()["detail"]
    missing = client.post(store, json=event())
    assert missing.status_code == 401
    assert "sentry_key" in missing.json()["detail"]
    unknown = client.post("/api/999999/store/", json=event(), headers=auth(project))
    assert unknown.status_code == 401
    assert client.post("/api/99999999999/store/", json=event()).status_code == 422
    assert len(groups(db)) == 1


def test_envelope_keeps_events_counts_other_items_and_reads_gzip_and_deflate(
    client: TestClient, db: Session
) -> None:
    project = make_project(db)
    url = f"/api/{project.id}/envelope/"
    session_item = ({"type": "session"}, b'{"sid": "x", "status": "ok"}')
    report = ({"type": "client_report"}, b'{"discarded_events": []}')
    body = envelope(event_item(event()), session_item, report)
    plain = client.post(url, content=body, headers=auth(project))
    assert plain.status_code == 200, plain.text
    assert plain.json()["events"] == 1
    assert plain.json()["skipped"] == {"session": 1, "client_report": 1}
    for encoding, packed in (
        ("gzip", gzip.compress(body)),
        ("deflate", zlib.compress(body)),
        ("deflate", zlib.compress(body, wbits=-15)),  # raw deflate, as some clients send
    ):
        headers = {**auth(project), "Content-Encoding": encoding}
        answer = client.post(url, content=packed, headers=headers)
        assert answer.status_code == 200, (encoding, answer.text)
        assert answer.json()["events"] == 1
    (group,) = groups(db)
    assert group.count == 4


def test_one_bad_envelope_item_is_refused_and_the_others_are_kept(
    client: TestClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUTYDESK_EXCEPTION_MAX_EVENT_BYTES", "4096")
    get_settings.cache_clear()
    project = make_project(db)
    huge = event(value="x" * 5000)
    body = envelope(
        event_item(event()),
        ({"type": "event"}, b"{not json"),
        ({"type": "event"}, b"[1, 2]"),
        event_item(huge),
        event_item(event("KeyError", "'sku'", "price = prices[sku]")),
    )
    answer = client.post(f"/api/{project.id}/envelope/", content=body, headers=auth(project))
    assert answer.status_code == 200, answer.text
    assert answer.json()["events"] == 2
    refused = answer.json()["refused"]
    assert len(refused) == 3
    assert "item 1 is not JSON" in refused[0]
    assert "item 2 is not a JSON object" in refused[1]
    assert "item 3 is" in refused[2] and "over the limit of 4096" in refused[2]
    assert [g.count for g in groups(db)] == [1, 1]


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        (b"{not json", {}, 400, "the envelope header is not JSON"),
        (b"\x1f\x8b\x08garbage", {"Content-Encoding": "gzip"}, 400, "not valid gzip"),
        (b"{}", {"Content-Encoding": "br"}, 415, "'br' is not gzip, deflate or identity"),
        (b'{}\n{"type": "event", "length": 999}\n{}', {}, 400, "runs past the body"),
    ],
)
def test_unreadable_envelopes_get_a_4xx_that_says_why(
    client: TestClient, db: Session, body: bytes, headers: dict[str, str], status: int, words: str
) -> None:
    project = make_project(db)
    answer = client.post(
        f"/api/{project.id}/envelope/", content=body, headers={**auth(project), **headers}
    )
    assert answer.status_code == status, answer.text
    assert words in answer.json()["detail"]


def test_a_store_body_that_is_not_an_object_gets_400(client: TestClient, db: Session) -> None:
    project = make_project(db)
    answer = client.post(f"/api/{project.id}/store/", content=b"[1]", headers=auth(project))
    assert answer.status_code == 400
    assert answer.json()["detail"] == "the event is not a JSON object"


def test_bodies_over_the_limit_and_gzip_bombs_get_413(
    client: TestClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUTYDESK_EXCEPTION_MAX_BODY_BYTES", "65536")
    get_settings.cache_clear()
    project = make_project(db)
    url = f"/api/{project.id}/envelope/"
    big = envelope(event_item(event(value="x" * 70_000)))
    over = client.post(url, content=big, headers=auth(project))
    assert over.status_code == 413
    assert "over the limit of 65536" in over.json()["detail"]
    bomb = gzip.compress(b"{}\n" + b" " * 5_000_000)
    assert len(bomb) < 65536
    headers = {**auth(project), "Content-Encoding": "gzip"}
    inflated = client.post(url, content=bomb, headers=headers)
    assert inflated.status_code == 413
    assert "inflates to more than" in inflated.json()["detail"]
    assert groups(db) == []


def test_over_the_projects_rate_gets_429_with_retry_after(client: TestClient, db: Session) -> None:
    project = make_project(db, rate_limit=2, rate_window_seconds=3600)
    store = f"/api/{project.id}/store/"
    for _ in range(2):
        assert client.post(store, json=event(), headers=auth(project)).status_code == 200
    limited = client.post(store, json=event(), headers=auth(project))
    assert limited.status_code == 429
    retry = int(limited.headers["Retry-After"])
    assert 0 < retry <= 3600
    assert limited.headers["X-Sentry-Rate-Limits"] == f"{retry}::project:project_quota"
    assert "rate limit of 2 requests per 3600 s" in limited.json()["detail"]
    other = make_project(db, "other")
    assert (
        client.post(f"/api/{other.id}/store/", json=event(), headers=auth(other)).status_code == 200
    )
    db.expire_all()
    assert (
        db.scalar(select(ExceptionGroup.count).where(ExceptionGroup.project_id == project.id)) == 2
    )


def test_a_group_keeps_only_its_newest_events_but_counts_all(
    client: TestClient, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DUTYDESK_EXCEPTION_EVENTS_PER_GROUP", "2")
    get_settings.cache_clear()
    project = make_project(db)
    sent = [event() for _ in range(4)]
    for body in sent:
        assert (
            client.post(f"/api/{project.id}/store/", json=body, headers=auth(project)).status_code
            == 200
        )
    (group,) = groups(db)
    assert group.count == 4
    kept = db.scalars(select(ExceptionEvent.event_id).order_by(ExceptionEvent.id)).all()
    assert kept == [sent[2]["event_id"], sent[3]["event_id"]]


def test_release_and_environment_are_kept_and_a_group_new_in_the_newest_release_is_marked(
    client: TestClient, db: Session
) -> None:
    project = make_project(db)
    store = f"/api/{project.id}/store/"
    old = event(release="shop@1.0", environment="production", tags={"region": "eu"})
    assert client.post(store, json=old, headers=auth(project)).status_code == 200
    new = event("KeyError", "'sku'", "prices[sku]", release="shop@1.1", environment="production")
    assert client.post(store, json=new, headers=auth(project)).status_code == 200
    listed = client.get("/api/v1/exception-groups", headers={"Authorization": "Bearer x"})
    assert listed.status_code == 401
    made = groups(db)
    assert [(g.first_release, g.environment) for g in made] == [
        ("shop@1.0", "production"),
        ("shop@1.1", "production"),
    ]
    stored = db.scalar(select(ExceptionEvent).where(ExceptionEvent.release == "shop@1.0"))
    assert stored is not None and stored.data["tags"] == {"region": "eu"}


def test_library_frames_do_not_split_a_group(client: TestClient, db: Session) -> None:
    project = make_project(db)
    for lineno in (10, 99):
        body = event()
        frames = body["exception"]["values"][0]["stacktrace"]["frames"]
        frames[0]["lineno"] = lineno  # the library frame (in_app false) moved
        for frame in frames:
            frame.pop("in_app")  # as SDKs send frames they cannot place...
        frames[0]["in_app"] = False  # ...except those they know are libraries
        assert (
            client.post(f"/api/{project.id}/store/", json=body, headers=auth(project)).status_code
            == 200
        )
    assert [g.count for g in groups(db)] == [2]


def test_nul_and_lone_surrogates_in_an_event_are_stored_as_replacement_characters(
    client: TestClient, db: Session
) -> None:
    project = make_project(db)
    # json.dumps writes both as \u escapes, as an SDK would.
    body = json.dumps(event(value="bad\u0000input", tags={"k\ud800": "v\u0000"})).encode()
    answer = client.post(f"/api/{project.id}/store/", content=body, headers=auth(project))
    assert answer.status_code == 200, answer.text
    (group,) = groups(db)
    assert group.title == "ValueError: bad\ufffdinput"
    stored = db.scalar(select(ExceptionEvent))
    assert stored is not None and stored.data["tags"] == {"k\ufffd": "v\ufffd"}


def test_a_gzipped_json_event_at_the_store_endpoint_is_read(
    client: TestClient, db: Session
) -> None:
    project = make_project(db)
    body = gzip.compress(json.dumps(event()).encode())
    headers = {**auth(project), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    answer = client.post(f"/api/{project.id}/store/", content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert [(g.title, g.count) for g in groups(db)] == [("ValueError: bad input", 1)]


def test_each_groups_events_per_hour_are_written_as_a_series(
    client: TestClient, db: Session
) -> None:
    import datetime as dt

    from dutydesk.diagnose import service
    from dutydesk.metrics import service as metrics

    project = make_project(db)
    store = f"/api/{project.id}/store/"
    assert client.post(store, json=event(), headers=auth(project)).status_code == 200
    other = event("KeyError", "'sku'", "price = prices[sku]")
    two = envelope(event_item(event()), event_item(other))
    sent = client.post(f"/api/{project.id}/envelope/", content=two, headers=auth(project))
    assert sent.status_code == 200 and sent.json()["events"] == 2
    assert client.post(store, json=event(), headers=auth(project)).status_code == 200
    value_error, key_error = groups(db)
    assert (value_error.count, key_error.count) == (3, 1)
    hour = metrics.bucket_start(value_error.last_seen, metrics.Period.hour)
    names = dict(metrics.series_names(db, "exceptions.events"))
    assert names == {
        f"exceptions.events[shop,{value_error.id}]": {
            "project": "shop",
            "group": str(value_error.id),
        },
        f"exceptions.events[shop,{key_error.id}]": {"project": "shop", "group": str(key_error.id)},
    }
    since = hour - dt.timedelta(hours=1)
    assert metrics.series(db, f"exceptions.events[shop,{value_error.id}]", since=since) == [
        (hour, 3.0)
    ]
    assert metrics.series(db, f"exceptions.events[shop,{key_error.id}]", since=since) == [
        (hour, 1.0)
    ]
    # The next hour's events start a new point of the same series.
    later = hour + dt.timedelta(hours=1, minutes=5)
    service.count_in_series(db, project, value_error, later)
    service.count_in_series(db, project, value_error, later)
    db.commit()
    assert metrics.series(db, f"exceptions.events[shop,{value_error.id}]", since=since) == [
        (hour, 3.0),
        (hour + dt.timedelta(hours=1), 2.0),
    ]
