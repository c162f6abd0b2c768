"""The Exports console and API: runs, starting a run, progress, tables, previews, downloads."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import duckdb
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.export import service
from dutydesk.export.models import ExportRun, WarehouseTable
from dutydesk.jobs import service as jobs
from dutydesk.jobs.models import Job
from dutydesk.people import service as people
from tests.conftest import make_user, sign_in
from tests.export.test_runs import END, START, drain, table_rows

WINDOW = {"useLastExportTime": False, "startDateTime": START, "endDateTime": END}
SCOPES = ("NO_SHARING", "SPONSORS_AND_PARTNERS", "ALL_QUALIFIED_RESEARCHERS")


@pytest.fixture
def exported(records: Path, db: Session, factory: sessionmaker[Session]) -> ExportRun:
    """A finished export of every study over the test window."""
    run = service.start_run(db, WINDOW, created_by="night", queue=True)
    db.commit()
    drain(db, factory)
    db.refresh(run)
    assert run.state == "succeeded"
    return run


def as_viewer(client: TestClient, db: Session) -> str:
    return sign_in(client, db, make_user(db, "viewer"))


def as_operator(client: TestClient, db: Session) -> str:
    return sign_in(client, db, make_user(db, "operator", "olga"))


def token(db: Session, scope: str) -> dict[str, str]:
    made = people.create_token(db, f"{scope} robot", [scope])
    db.commit()
    return {"Authorization": f"Bearer {made.secret}"}


def rows_of(html: str, table_id: str) -> list[str]:
    body = re.search(rf'<table id="{table_id}".*?<tbody>(.*?)</tbody>', html, re.S)
    assert body, f"no table {table_id}"
    return re.findall(r"<tr\b.*?</tr>", body.group(1), re.S)


def number(value: int) -> str:
    return f"{value:,}"


# Runs


def test_viewer_sees_runs_with_the_numbers_of_their_metrics(
    exported: ExportRun, client: TestClient, db: Session
) -> None:
    as_viewer(client, db)
    counters = exported.metrics["counters"]
    accepted = sum(counters.get(f"accepted[{scope}]", 0) for scope in SCOPES)
    excluded = sum(counters.get(f"excluded[{scope}]", 0) for scope in SCOPES)
    assert accepted and accepted + excluded == counters["numTotal"]

    listed = client.get("/api/v1/exports").json()
    assert [run["id"] for run in listed] == [exported.id]
    summary = listed[0]
    assert summary["state"] == "succeeded"
    assert summary["records_in"] == counters["numTotal"]
    assert (summary["accepted"], summary["excluded"]) == (accepted, excluded)
    assert summary["tables_failed"] == 0
    assert summary["parts_done"] == summary["parts_total"] == len(exported.studies)

    page = client.get("/exports")
    assert page.status_code == 200
    (row,) = rows_of(page.text, "runs")
    assert f'href="/exports/{exported.id}"' in row
    assert 'class="state-succeeded"' in row
    assert "hx-get" not in row  # a finished run is not polled
    for value in (counters["numTotal"], accepted, excluded):
        assert f'<td class="num">{number(value)}</td>' in row
    assert client.get("/exports?state=failed").text.count('id="run-') == 0


def test_run_page_and_api_show_parts_metrics_tables_and_log(
    exported: ExportRun, client: TestClient, db: Session
) -> None:
    as_viewer(client, db)
    detail = client.get(f"/api/v1/exports/{exported.id}").json()
    assert detail["metrics"] == exported.metrics
    assert sorted(part["study_id"] for part in detail["parts"]) == sorted(exported.studies)
    assert sum(part["records"] for part in detail["parts"]) == detail["records_in"]
    lines = {
        name.removesuffix(".lineCount"): count
        for name, count in exported.metrics["counters"].items()
        if name.endswith(".lineCount")
    }
    assert detail["table_lines"] == lines
    assert detail["final_line"] == exported.final_line

    page = client.get(f"/exports/{exported.id}")
    assert page.status_code == 200
    assert exported.final_line is not None and exported.final_line in page.text
    assert len(rows_of(page.text, "parts")) == len(exported.studies)
    assert "&#34;startDateTime&#34;: &#34;2026-11-10T00:00:00.000-08:00&#34;" in page.text
    key, count = next(iter(sorted(lines.items())))
    table_row = next(row for row in rows_of(page.text, "table-lines") if f">{key}<" in row)
    assert f'href="/exports/tables/{key}"' in table_row
    assert number(count) in table_row
    counters = rows_of(page.text, "counters")
    assert any("numTotal" in row and number(detail["records_in"]) in row for row in counters)
    assert "Exporting the following studies" in page.text


def test_unknown_run_is_404_on_page_and_api(client: TestClient, db: Session) -> None:
    as_viewer(client, db)
    assert client.get("/exports/4242").status_code == 404
    assert client.get("/exports/4242/progress").status_code == 404
    answer = client.get("/api/v1/exports/4242")
    assert answer.status_code == 404
    assert answer.json() == {"detail": "no export run with id 4242"}


def test_operator_starts_a_run_from_the_form_and_it_runs(
    records: Path, client: TestClient, db: Session, factory: sessionmaker[Session]
) -> None:
    csrf = as_operator(client, db)
    assert 'id="run-form"' in client.get("/exports").text
    answer = client.post(
        "/exports",
        data={
            "csrf_token": csrf,
            "start": "2026-11-10T00:00",
            "end": "2026-11-21T00:00",
            "time_zone": "America/Los_Angeles",
            "studies": "study-a, study-b",
            "sharing_mode": "ALL",
        },
    )
    assert answer.status_code == 303
    run_id = int(answer.headers["location"].removeprefix("/exports/"))
    run = db.get(ExportRun, run_id)
    assert run is not None
    assert run.created_by == "olga"
    assert run.request["startDateTime"] == "2026-11-10T00:00:00.000-08:00"
    assert run.request["endDateTime"] == "2026-11-21T00:00:00.000-08:00"
    assert run.request["studyWhitelist"] == ["study-a", "study-b"]
    assert run.request["sharingMode"] == "ALL"
    queued = db.scalars(select(Job).where(Job.kind == "export.run")).all()
    assert [job.args for job in queued] == [{"run_id": run_id}]

    drain(db, factory)
    page = client.get(f"/exports/{run_id}")
    assert '<small class="state-succeeded" id="run-state">succeeded</small>' in page.text
    parts = rows_of(page.text, "parts")
    assert [row.count("state-succeeded") for row in parts] == [1, 1]
    db.refresh(run)
    assert sorted(run.studies) == ["study-a", "study-b"]


def test_form_without_a_start_exports_each_study_from_its_last_export(
    records: Path, client: TestClient, db: Session
) -> None:
    csrf = as_operator(client, db)
    answer = client.post(
        "/exports",
        data={"csrf_token": csrf, "end": "2026-11-21T08:00:00", "time_zone": "UTC"},
    )
    assert answer.status_code == 303
    run = db.scalars(select(ExportRun)).one()
    assert run.request["useLastExportTime"] is True
    assert run.request["endDateTime"] == "2026-11-21T08:00:00.000Z"


def test_form_without_csrf_token_is_refused(client: TestClient, db: Session) -> None:
    as_operator(client, db)
    answer = client.post("/exports", data={"start": "2026-11-10T00:00", "end": "2026-11-11T00:00"})
    assert answer.status_code == 403
    assert db.scalars(select(ExportRun)).first() is None


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"start": "2026-11-12T00:00", "end": "2026-11-11T00:00"}, "startDateTime must be before"),
        ({"start": "yesterday", "end": "2026-11-11T00:00"}, "startDateTime is not a date"),
        ({"start": "2026-11-10T00:00", "end": ""}, "endDateTime must be specified"),
        ({"end": "2026-11-11T00:00", "time_zone": "Mars/Olympus"}, "Unknown time zone"),
        ({"end": "2026-11-11T00:00", "sharing_mode": "EVERYONE"}, "sharingMode must be one of"),
    ],
)
def test_bad_form_request_is_shown_back_with_the_problem(
    client: TestClient, db: Session, fields: dict[str, str], says: str
) -> None:
    csrf = as_operator(client, db)
    answer = client.post("/exports", data={"csrf_token": csrf, **fields})
    assert answer.status_code == 400
    error = re.search(r'<p class="error" id="form-error">(.*?)</p>', answer.text)
    assert error and says in error.group(1)
    assert '<details id="run-now" open>' in answer.text
    if fields.get("start"):
        assert f'name="start" value="{fields["start"]}"' in answer.text
    assert db.scalars(select(ExportRun)).first() is None


def test_operator_token_starts_a_run_through_the_api(client: TestClient, db: Session) -> None:
    answer = client.post("/api/v1/exports", json=WINDOW, headers=token(db, "write"))
    assert answer.status_code == 202
    started = answer.json()
    assert started["state"] == "queued"
    run = db.get(ExportRun, started["id"])
    assert run is not None
    assert run.created_by == "(token write robot)"
    assert run.request["startDateTime"] == START


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ('{"useLastExportTime": false, "startDateTime": "2026-11-10T00:00:00Z"}', "endDateTime"),
        ('{"useLastExportTime": true, "endDateTime": "x", "date": "2026-11-10"}', "date"),
        ('{"useLastExportTime": ', "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_bad_api_request_is_422_naming_the_problem(
    client: TestClient, db: Session, body: str, says: str
) -> None:
    answer = client.post(
        "/api/v1/exports",
        content=body,
        headers={**token(db, "write"), "Content-Type": "application/json"},
    )
    assert answer.status_code == 422
    assert says in answer.json()["detail"]
    assert db.scalars(select(ExportRun)).first() is None


def test_viewers_may_not_start_runs(client: TestClient, db: Session) -> None:
    csrf = as_viewer(client, db)
    assert 'id="run-form"' not in client.get("/exports").text
    form = {"csrf_token": csrf, "start": "2026-11-10T00:00", "end": "2026-11-11T00:00"}
    assert client.post("/exports", data=form).status_code == 403
    client.cookies.clear()
    assert client.post("/api/v1/exports", json=WINDOW, headers=token(db, "read")).status_code == 403
    assert db.scalars(select(ExportRun)).first() is None


def test_progress_of_a_running_run_polls_until_it_ends(
    records: Path, client: TestClient, db: Session, factory: sessionmaker[Session]
) -> None:
    as_viewer(client, db)
    run = service.start_run(db, WINDOW, created_by="night", queue=True)
    db.commit()
    queued = client.get(f"/exports/{run.id}/progress")
    assert queued.status_code == 200
    assert "waiting for a worker" in queued.text
    # Only the planning job runs: the run is running, no study is done yet.
    plan = db.scalars(select(Job.id).where(Job.kind == "export.run")).one()
    db.commit()
    assert jobs.execute(plan, "test-worker", factory) == "succeeded"
    db.refresh(run)
    assert run.state == "running"
    row = client.get(f"/exports/{run.id}/progress")
    assert row.status_code == 200
    assert row.text.lstrip().startswith(f'<tr id="run-{run.id}" hx-get=')
    assert f"0/{len(run.studies)} studies" in row.text
    panel = client.get(f"/exports/{run.id}/progress?view=panel")
    assert panel.status_code == 200
    assert 'hx-trigger="every 2s"' in panel.text
    assert "hx-refresh" not in panel.headers
    assert 'id="run-progress"' in client.get(f"/exports/{run.id}").text

    drain(db, factory)
    assert "hx-get" not in client.get(f"/exports/{run.id}/progress").text
    assert client.get(f"/exports/{run.id}/progress?view=panel").headers["hx-refresh"] == "true"


# Tables


def test_tables_page_groups_the_registry_by_study(
    exported: ExportRun, client: TestClient, db: Session
) -> None:
    as_viewer(client, db)
    page = client.get("/exports/tables")
    assert page.status_code == 200
    for study in exported.studies:
        section = re.search(rf'<section id="study-{study}">(.*?)</section>', page.text, re.S)
        assert section
        keys = db.scalars(select(WarehouseTable.key).where(WarehouseTable.study_id == study))
        for key in keys:
            assert f'<a href="/exports/tables/{key}">{key}</a>' in section.group(1)
    listed = client.get("/api/v1/exports/tables").json()
    assert {table["key"] for table in listed} == set(db.scalars(select(WarehouseTable.key)))
    assert all(table["columns"] for table in listed)


def test_table_page_previews_at_most_50_rows_with_the_column_names(
    exported: ExportRun, records: Path, client: TestClient, db: Session
) -> None:
    as_viewer(client, db)
    counts = table_rows(records)
    key = max(counts, key=lambda name: counts[name])
    assert counts[key] > 50
    page = client.get(f"/exports/tables/{key}")
    assert page.status_code == 200
    assert f'<span id="row-count">{number(counts[key])}</span>' in page.text
    assert len(rows_of(page.text, "preview")) == 50
    header = re.search(r'<table id="preview".*?<thead><tr>(.*?)</tr>', page.text, re.S)
    assert header
    names = re.findall(r"<th>(.*?)</th>", header.group(1))
    assert names[:2] == ["recordId", "appVersion"]
    assert "exportDate" in names
    table = db.get(WarehouseTable, key)
    assert table is not None
    assert len(rows_of(page.text, "columns")) == len(table.columns)
    assert f'href="/exports/{exported.id}"' in page.text

    small = min(counts, key=lambda name: counts[name])
    assert len(rows_of(client.get(f"/exports/tables/{small}").text, "preview")) == counts[small]


def test_downloads_in_three_formats_hold_the_whole_table(
    exported: ExportRun, records: Path, client: TestClient, db: Session, tmp_path: Path
) -> None:
    as_viewer(client, db)
    counts = table_rows(records)
    key = max(counts, key=lambda name: counts[name])
    table = db.get(WarehouseTable, key)
    assert table is not None
    names = [column["name"] for column in table.columns]

    tsv = client.get(f"/exports/tables/{key}/download?format=tsv")
    assert tsv.status_code == 200
    assert tsv.headers["content-disposition"] == f'attachment; filename="{key}.tsv"'
    tsv_rows = list(csv.reader(io.StringIO(tsv.text), delimiter="\t"))
    assert tsv_rows[0][: len(names)] == names
    assert len(tsv_rows) - 1 == counts[key]

    as_csv = client.get(f"/exports/tables/{key}/download", params={"format": "csv"})
    assert as_csv.headers["content-disposition"] == f'attachment; filename="{key}.csv"'
    csv_rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert len(csv_rows) == counts[key]
    assert {row["recordId"] for row in csv_rows} == {row[0] for row in tsv_rows[1:]}

    parquet = client.get(f"/exports/tables/{key}/download?format=parquet")
    assert parquet.headers["content-disposition"] == f'attachment; filename="{key}.parquet"'
    saved = tmp_path / "download.parquet"
    saved.write_bytes(parquet.content)
    found = duckdb.sql(f"SELECT count(*) FROM read_parquet('{saved}')").fetchone()
    assert found is not None and found[0] == counts[key]


def test_download_refuses_unknown_formats_and_tables(
    exported: ExportRun, client: TestClient, db: Session
) -> None:
    as_viewer(client, db)
    key = f"{exported.studies[0]}-appVersion"
    assert client.get(f"/exports/tables/{key}/download?format=xlsx").status_code == 422
    assert client.get("/exports/tables/study-z-appVersion/download").status_code == 404
    assert client.get("/exports/tables/study-z-appVersion").status_code == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/exports/tables/%2E%2E", 422),
        ("/exports/tables/%2E%2E/download", 422),
        ("/exports/tables/..%2F..%2Fetc", 404),
        ("/exports/tables/study-a%2Fstudy-a-appVersion", 404),
        ("/exports/tables/study-a-appVersion..", 404),
        ("/exports/tables/%20rm", 422),
    ],
)
def test_table_keys_that_could_name_other_paths_are_refused(
    exported: ExportRun, client: TestClient, db: Session, path: str, status: int
) -> None:
    as_viewer(client, db)
    assert client.get(path).status_code == status


def test_a_registry_row_naming_a_folder_outside_the_warehouse_is_not_read(
    exported: ExportRun, client: TestClient, db: Session
) -> None:
    as_viewer(client, db)
    db.add(WarehouseTable(key="sneaky", study_id="..", kind="schema", columns=[]))
    db.commit()
    assert client.get("/exports/tables/sneaky").status_code == 404
    assert client.get("/exports/tables/sneaky/download").status_code == 404
