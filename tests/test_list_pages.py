"""List pages come a page at a time, with Newer and Older links that keep the filters."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from dutydesk.jobs.models import Job
from dutydesk.jobs.routes import PAGE_SIZE
from tests.conftest import make_user, sign_in


def job_ids(html: str) -> list[int]:
    body = html.split('id="jobs"')[1].split("</table>")[0]
    return [int(n) for n in re.findall(r"<tr>\s*<td>(\d+)</td>", body)]


def test_the_jobs_page_shows_a_page_of_jobs_and_links_to_the_older_ones(
    client: TestClient, db: Session
) -> None:
    viewer = make_user(db, "viewer")
    for _ in range(PAGE_SIZE + 7):
        db.add(Job(kind="jobs.prune", args={}, created_by="test"))
    db.commit()
    sign_in(client, db, viewer)
    first = client.get("/jobs")
    assert first.status_code == 200
    newest = job_ids(first.text)
    assert len(newest) == PAGE_SIZE and newest == sorted(newest, reverse=True)
    assert 'href="/jobs?page=2" rel="next">Older' in first.text
    assert 'rel="prev"' not in first.text
    second = client.get("/jobs", params={"page": 2})
    older = job_ids(second.text)
    assert len(older) == 7 and max(older) < min(newest)
    assert 'href="/jobs?page=1" rel="prev">Newer' in second.text
    assert 'rel="next"' not in second.text
    filtered = client.get("/jobs", params={"kind": "jobs.prune"})
    assert 'href="/jobs?page=2&amp;kind=jobs.prune" rel="next"' in filtered.text
    assert client.get("/jobs", params={"page": 0}).status_code == 422
    assert client.get("/jobs", params={"page": "x"}).status_code == 422


def test_the_audit_page_links_to_older_changes_and_back_keeping_the_filter(
    client: TestClient, db: Session
) -> None:
    from dutydesk.audit.models import AuditEvent
    from dutydesk.audit.routes import PAGE_SIZE as AUDIT_PAGE

    viewer = make_user(db, "viewer")
    for n in range(AUDIT_PAGE + 3):
        db.add(
            AuditEvent(
                actor="ada", action="update", object_type="widgets", object_id=str(n), diff={}
            )
        )
    db.commit()
    sign_in(client, db, viewer)
    first = client.get("/audit", params={"actor": "ada"})
    assert first.status_code == 200
    assert "Older</a>" in first.text and "Newer</a>" not in first.text
    older = re.search(r'<a href="\?([^"]*)">Older</a>', first.text)
    assert older is not None and "actor=ada" in older.group(1)
    second = client.get("/audit?" + older.group(1).replace("&amp;", "&"))
    assert second.status_code == 200
    assert "Newer</a>" in second.text and "Older</a>" not in second.text
