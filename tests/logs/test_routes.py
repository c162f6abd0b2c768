"""The Logs page: viewers query, operators save extracts, admins run raw SQL read-only."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.conftest import make_user, sign_in
from tests.logs.conftest import write_access_logs


def signed_in(client: TestClient, db: Session, role: str) -> str:
    return sign_in(client, db, make_user(db, role))


def test_a_viewer_runs_a_grouped_query_and_sees_table_and_chart(
    client: TestClient, db: Session, log_root: Path
) -> None:
    write_access_logs(log_root, files=3, lines=40)
    (log_root / "part0" / "odd.log").write_text("not an access line\n")
    signed_in(client, db, "viewer")
    page = client.get(
        "/logs",
        params={"root": str(log_root), "format": "nginx", "group_by": "hour,status", "run": 1},
    )
    assert page.status_code == 200, page.text
    assert 'id="chart"' in page.text and "uPlot" in page.text
    assert "<th>hour</th><th>status</th><th>count</th>" in page.text
    assert "Lines that do not parse as nginx" in page.text and "not an access line" in page.text
    assert "No warnings or errors taken in yet." in page.text
    assert 'action="/logs/extracts"' not in page.text  # saving needs the operate permission


def test_a_query_outside_the_roots_is_refused_on_the_page(
    client: TestClient, db: Session, log_root: Path
) -> None:
    signed_in(client, db, "viewer")
    page = client.get("/logs", params={"root": "/etc", "pattern": "passwd", "run": 1})
    assert page.status_code == 422
    assert "outside the allowed log roots" in page.text


def test_an_operator_saves_an_extract_and_it_is_listed(
    client: TestClient, db: Session, log_root: Path
) -> None:
    write_access_logs(log_root, files=2, lines=30)
    csrf = signed_in(client, db, "operator")
    saved = client.post(
        "/logs/extracts",
        data={
            "csrf_token": csrf,
            "name": "server-errors",
            "root": str(log_root),
            "format": "nginx",
            "where": "status=500",
        },
    )
    assert saved.status_code == 303
    page = client.get(saved.headers["location"])
    assert "Saved extract server-errors." in page.text
    assert "@server-errors" in page.text and "--where status=500" in page.text
    statuses = set(re.findall(r'<td title="(\d{3})">', page.text))
    assert statuses == {"500"}


def test_saving_needs_a_name(client: TestClient, db: Session, log_root: Path) -> None:
    csrf = signed_in(client, db, "operator")
    page = client.post("/logs/extracts", data={"csrf_token": csrf, "root": str(log_root)})
    assert page.status_code == 422 and "give the extract a name" in page.text


def test_admins_run_one_select_read_only(client: TestClient, db: Session, log_root: Path) -> None:
    (log_root / "a.log").write_text("one\ntwo\n")
    csrf = signed_in(client, db, "admin")
    select = (
        f"SELECT count(*) AS n FROM read_csv('{log_root}/a.log', columns={{'line': 'VARCHAR'}}, "
        "delim=e'\\x01', quote='', escape='', header=false)"
    )
    page = client.post("/logs/sql", data={"csrf_token": csrf, "sql": select})
    assert page.status_code == 200, page.text
    assert '<td title="2">2</td>' in page.text
    for refused, why in [
        (f"COPY (SELECT 1) TO '{log_root}/out.csv'", "one SELECT statement only"),
        ("CREATE TABLE t (a INT)", "one SELECT statement only"),
        ("SELECT 1; SELECT 2", "one SELECT statement only"),
        ("SELECT * FROM read_text('/etc/passwd')", "disabled by configuration"),
        ("SET enable_external_access = true", "one SELECT statement only"),
    ]:
        page = client.post("/logs/sql", data={"csrf_token": csrf, "sql": refused})
        assert page.status_code == 422, refused
        assert why in page.text, (refused, page.text[-2000:])
    assert not (log_root / "out.csv").exists()


def test_the_raw_sql_page_is_for_admins_only(client: TestClient, db: Session) -> None:
    signed_in(client, db, "operator")
    assert client.get("/logs/sql").status_code == 403


def test_the_logs_page_shows_the_error_groups_of_lines_taken_in(
    client: TestClient, db: Session
) -> None:
    from dutydesk.db import utcnow
    from dutydesk.intake.logs import ingest

    text = "".join(
        f"2026-11-24 10:0{n}:00,123 ERROR [main] org.sage.Exporter - Timeout after {n}00 ms\n"
        for n in range(3)
    )
    ingest(db, "exporter", text, "java", utcnow(), strict=False)
    db.commit()
    signed_in(client, db, "viewer")
    page = client.get("/logs")
    assert page.status_code == 200
    section = page.text[page.text.index('id="error-groups"') :]
    assert "exporter" in section
    assert "Timeout after" in section and "<num>" in section.replace("&lt;", "<").replace(
        "&gt;", ">"
    )
    assert "No warnings or errors taken in yet." not in section
