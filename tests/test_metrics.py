"""The desk's own /metrics: request durations, intake outcomes, process collectors and gauges
of the desk's state read from the database, in Prometheus' text format."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from dutydesk.db import utcnow
from dutydesk.export.models import ExportRun
from dutydesk.intake import service as intake
from dutydesk.jobs import service as jobs
from dutydesk.notify.models import Delivery
from dutydesk.people import service as people


def scrape(client: TestClient, db: Session) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape, by name and sorted labels."""
    made = people.create_token(db, "scraper", ["read"])
    db.commit()
    response = client.get("/metrics", headers={"Authorization": f"Bearer {made.secret}"})
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_request_durations_are_labelled_by_route_template_never_the_raw_path(
    client: TestClient, db: Session
) -> None:
    client.get("/health")
    client.get("/health")
    client.get("/no/such/page/42")
    samples = scrape(client, db)
    count = "dutydesk_http_request_duration_seconds_count"
    assert value(samples, count, method="GET", route="/health", status="200") == 2
    assert value(samples, count, method="GET", route="unmatched", status="404") == 1
    infinite = value(
        samples,
        "dutydesk_http_request_duration_seconds_bucket",
        method="GET",
        route="/health",
        status="200",
        le="+Inf",
    )
    assert infinite == 2
    assert not any("/no/such/page/42" in str(labels) for _name, labels in samples)


def test_process_and_python_collectors_are_there(client: TestClient, db: Session) -> None:
    names = {name for name, _labels in scrape(client, db)}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes"} <= names
    assert {"python_info", "python_gc_collections_total"} <= names


def test_intake_requests_are_counted_by_integration_kind_and_outcome(
    client: TestClient, db: Session
) -> None:
    made = intake.create_integration(db, name="counted", kind="generic", actor="test", rate_limit=2)
    db.commit()
    path = f"/hooks/generic/{made.token}"
    alert = {"title": "Disk full", "dedup_key": "disk", "severity": "warning"}
    assert client.post(path, json=alert).status_code == 202
    assert client.post(path, content=b"not json").status_code in (400, 422)
    assert client.post(path, json=alert).status_code == 429
    assert client.post("/hooks/generic/not-a-token", json=alert).status_code == 401
    samples = scrape(client, db)
    total = "dutydesk_intake_requests_total"
    assert value(samples, total, integration="counted", kind="generic", outcome="accepted") == 1
    assert value(samples, total, integration="counted", kind="generic", outcome="refused") == 1
    assert value(samples, total, integration="counted", kind="generic", outcome="rate_limited") == 1
    assert value(samples, total, integration="", kind="generic", outcome="refused") == 1


def test_gauges_tell_the_desk_state_from_the_database(client: TestClient, db: Session) -> None:
    made = intake.create_integration(db, name="gauged", kind="generic", actor="test")
    db.commit()
    alert = {"title": "Disk full", "dedup_key": "disk", "severity": "high"}
    assert client.post(f"/hooks/generic/{made.token}", json=alert).status_code == 202
    now = utcnow()
    for state in ("dead", "dead", "sent"):
        db.add(
            Delivery(
                subject=f"s-{state}-{len(db.new)}",
                target="t",
                channel="mail",
                kind="email",
                address="a@example.org",
                reason="opened",
                title="x",
                state=state,
            )
        )
    db.add(
        ExportRun(
            request={},
            request_text="",
            run_key="k",
            state="succeeded",
            export_date="2026-12-01",
            created_by="test",
            started_at=now - dt.timedelta(seconds=90),
            finished_at=now,
            metrics={"counters": {"numTotal": 1234}},
        )
    )
    jobs.enqueue(db, "people.prune")
    db.commit()
    samples = scrape(client, db)
    assert value(samples, "dutydesk_open_tickets", severity="high", status="open") == 1
    assert value(samples, "dutydesk_open_tickets", severity="critical", status="open") == 0
    assert value(samples, "dutydesk_deliveries", channel_kind="email", state="dead") == 2
    assert value(samples, "dutydesk_deliveries", channel_kind="email", state="sent") == 1
    assert value(samples, "dutydesk_dead_letters") == 2
    assert value(samples, "dutydesk_watchdog_ok") == 1
    assert value(samples, "dutydesk_watchdog_unnoticed_tickets") == 0
    success = value(samples, "dutydesk_export_last_success_timestamp_seconds")
    assert success == now.timestamp()
    duration = value(samples, "dutydesk_export_last_run_duration_seconds")
    assert duration is not None and abs(duration - 90) < 1e-3
    assert value(samples, "dutydesk_export_last_run_records") == 1234
    assert value(samples, "dutydesk_jobs", kind="people.prune", state="queued") == 1
    assert value(samples, "dutydesk_jobs", kind="people.prune", state="failed") == 0


def test_every_series_of_the_desk_is_documented(client: TestClient, db: Session) -> None:
    made = people.create_token(db, "scraper", ["read"])
    db.commit()
    text = client.get("/metrics", headers={"Authorization": f"Bearer {made.secret}"}).text
    documented = (Path(__file__).parent.parent / "docs" / "operations.md").read_text()
    names = {line.split()[2] for line in text.splitlines() if line.startswith("# HELP dutydesk_")}
    assert "dutydesk_open_tickets" in names
    missing = sorted(name for name in names if f"| `{name}` |" not in documented)
    assert missing == [], f"series not in docs/operations.md's table: {missing}"


def test_counters_show_no_created_series_whatever_was_counted_before(
    client: TestClient, db: Session
) -> None:
    from dutydesk.web.metrics import count_mail

    count_mail("smtp", "127.0.0.1:2525", "250 OK")  # a counter with a sample before the scrape
    made = people.create_token(db, "scraper", ["read"])
    db.commit()
    text = client.get("/metrics", headers={"Authorization": f"Bearer {made.secret}"}).text
    assert "dutydesk_mail_received_total" in text
    assert "_created" not in text


def test_a_killed_process_not_yet_reaped_is_not_scraped_as_alive() -> None:
    import signal
    import subprocess
    import time

    from dutydesk.processes import process_runs

    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert process_runs(sleeper.pid)
        os.kill(sleeper.pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while process_runs(sleeper.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process_runs(sleeper.pid)  # a zombie until waited for
        assert sleeper.poll() is not None
    finally:
        sleeper.kill()
        sleeper.wait()
