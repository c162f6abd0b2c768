"""Re-drive pages and API: who may do what, the paste and upload forms (bad lines named, the
rest kept), a token without a user, a stale signoff refused, the CSV report."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.people import service as people
from dutydesk.runbooks.redrive import service
from dutydesk.runbooks.redrive.models import RedriveBatch
from dutydesk.settings import get_settings
from tests.conftest import sign_in
from tests.runbooks.test_redrive import store  # noqa: F401 (a fixture)
from tests.tickets.conftest import add_person


@pytest.fixture
def web(
    factory: sessionmaker[Session],
    store: sessionmaker[Session],  # noqa: F811
) -> Iterator[TestClient]:
    """The app on the test's database and the small record store."""
    from dutydesk.web.app import create_app

    app = create_app(get_settings(), factory, records_factory=store)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as client:
        yield client


def test_who_may_see_and_change_batches(db: Session, web: TestClient) -> None:
    assert web.get("/api/v1/redrives").status_code == 401
    assert web.get("/redrives").status_code in (302, 303, 307)
    viewer = add_person(db, "vic", "viewer")
    token = sign_in(web, db, viewer)
    assert web.get("/redrives").status_code == 200
    assert web.get("/api/v1/redrives").json() == []
    answer = web.post(
        "/api/v1/redrives/items",
        json={"ids": ["r-a1"], "reason": "x"},
        headers={"X-CSRF-Token": token},
    )
    assert answer.status_code == 403
    assert web.post("/redrives/open", data={"csrf_token": token}).status_code == 403
    assert web.get("/api/v1/redrives/999").status_code == 404


def test_paste_and_upload_name_the_bad_line_and_keep_the_rest(db: Session, web: TestClient) -> None:
    olga = add_person(db, "olga", "operator", "olga@desk.example")
    token = sign_in(web, db, olga)
    opened = web.post("/redrives/open", data={"csrf_token": token})
    assert opened.status_code == 303
    path = opened.headers["location"]
    page = web.post(
        f"{path}/add",
        data={
            "csrf_token": token,
            "ids": "r-a1\nr-a2\nr-a1\n",
            "study": "study-a",
            "reason": "DD-1",
        },
        files={"file": ("ids.txt", b"r-a3\nnot-a-record\n\nr-a4\n", "text/plain")},
    )
    assert page.status_code == 200
    text = page.text
    assert "Pasted list:</strong> Batch" in text and "2 added, 1 duplicate merged (r-a1)" in text
    assert "line 2: unknown record ID &#39;not-a-record&#39;" in text
    assert "File:</strong> Batch" in text and "2 added" in text
    batch = db.get(RedriveBatch, int(path.rsplit("/", 1)[1]))
    assert batch is not None
    assert service.record_ids(db, batch) == ["r-a1", "r-a2", "r-a3", "r-a4"]
    empty = web.post(f"{path}/add", data={"csrf_token": token, "ids": " ", "reason": "x"})
    assert empty.status_code == 422 and "Paste IDs or choose a file." in empty.text
    no_csrf = web.post(f"{path}/add", data={"ids": "r-a5", "reason": "x"})
    assert no_csrf.status_code == 403


def test_api_add_submit_stale_signoff_token_without_user_and_csv(
    db: Session, web: TestClient
) -> None:
    add_person(db, "olga", "operator", "olga@desk.example")
    abe = add_person(db, "abe", "approver", "abe@desk.example")
    bot = people.create_token(db, "bot", ["write"]).secret
    mine = people.create_token(db, "olga-cli", ["write"], username="olga").secret
    db.commit()
    as_bot = {"Authorization": f"Bearer {bot}"}
    as_olga = {"Authorization": f"Bearer {mine}"}
    added = web.post(
        "/api/v1/redrives/items",
        json={"ids": ["r-a1", "r-a2", "bogus", "r-a2"], "study": "study-a", "reason": "DD-2"},
        headers=as_bot,
    )
    assert added.status_code == 200, added.text
    body = added.json()
    assert body["added"] == ["r-a1", "r-a2"] and body["duplicates"] == ["r-a2"]
    assert body["refused"] == [{"line": 3, "text": "bogus", "reason": "unknown record ID 'bogus'"}]
    batch_id = body["batch"]
    refused = web.post(f"/api/v1/redrives/{batch_id}/submit", headers=as_bot)
    assert refused.status_code == 403 and "needs a person" in refused.json()["detail"]
    submitted = web.post(f"/api/v1/redrives/{batch_id}/submit", headers=as_olga)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["change_state"] == "pending"
    # A token without a user cannot edit a submitted batch (it would revise the request).
    edit = web.post(
        f"/api/v1/redrives/{batch_id}/items", json={"ids": ["r-a3"], "reason": "x"}, headers=as_bot
    )
    assert edit.status_code == 403 and "needs a person" in edit.json()["detail"]
    # Approving a version the page no longer shows is refused with the reason.
    token = sign_in(web, db, abe)
    shown = web.get(f"/api/v1/redrives/{batch_id}").json()
    edit = web.post(
        f"/api/v1/redrives/{batch_id}/items", json={"ids": ["r-a3"], "reason": "x"}, headers=as_olga
    )
    assert edit.status_code == 200 and edit.json()["revised"] is True
    stale = web.post(
        f"/redrives/{batch_id}/approve",
        data={
            "csrf_token": token,
            "data_version": shown["data_version"],
            "evidence_hash": shown["evidence_hash"],
        },
    )
    assert stale.status_code == 409
    now = web.get(f"/api/v1/redrives/{batch_id}").json()
    assert now["data_version"] == shown["data_version"] + 1
    run_early = web.post(f"/redrives/{batch_id}/run", data={"csrf_token": token})
    assert run_early.status_code == 409
    report = web.get(f"/redrives/{batch_id}/report.csv")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(report.text)))
    assert rows[0] == ["record_id", "study", "reason_added", "outcome", "detail"]
    assert [row[0] for row in rows[1:]] == ["r-a1", "r-a2", "r-a3"]
    assert {row[3] for row in rows[1:]} == {"not verified"}
    items = web.get(f"/api/v1/redrives/{batch_id}/items?limit=2&offset=1", headers=as_bot)
    assert [item["record_id"] for item in items.json()] == ["r-a2", "r-a3"]


def test_verify_before_any_run_is_a_conflict(db: Session, web: TestClient) -> None:
    olga = add_person(db, "olga", "operator", "olga@desk.example")
    token = sign_in(web, db, olga)
    batch = web.post("/api/v1/redrives", json={}, headers={"X-CSRF-Token": token}).json()
    answer = web.post(f"/api/v1/redrives/{batch['id']}/verify", headers={"X-CSRF-Token": token})
    assert answer.status_code == 409 and "has not run" in answer.json()["detail"]
    other = web.post(
        f"/api/v1/redrives/{batch['id']}/items",
        json={"ids": ["r-a1"], "reason": "x", "batch": batch["id"] + 1},
        headers={"X-CSRF-Token": token},
    )
    assert other.status_code == 422 and "the body names batch" in other.json()["detail"]
    submit_empty = web.post(
        f"/api/v1/redrives/{batch['id']}/submit", headers={"X-CSRF-Token": token}
    )
    assert submit_empty.status_code == 422 and "is empty" in submit_empty.json()["detail"]


def test_the_batch_page_pages_its_ids(
    db: Session, web: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dutydesk.runbooks.redrive import pages

    monkeypatch.setattr(pages, "PAGE_SIZE", 2)
    olga = add_person(db, "olga", "operator", "olga@desk.example")
    token = sign_in(web, db, olga)
    added = web.post(
        "/api/v1/redrives/items",
        json={"ids": ["r-a3", "r-a1", "r-a2", "r-w1", "r-a4"], "reason": "paging"},
        headers={"X-CSRF-Token": token},
    ).json()
    batch = added["batch"]
    first = web.get(f"/redrives/{batch}").text
    assert "r-a1" in first and "r-a2" in first and "r-a3" not in first
    assert f'href="/redrives/{batch}?page=2" id="next-ids"' in first
    last = web.get(f"/redrives/{batch}?page=3").text
    assert "r-w1" in last and "r-a4" not in last and 'id="next-ids"' not in last
