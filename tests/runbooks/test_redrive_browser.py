"""The monthly re-drive in a real Chromium (Debian's) against the desk served by uvicorn, with a
real SMTP server (aiosmtpd) for the approver's notice.

An operator opens this month's batch, pastes IDs, uploads a file with a bad line (the line is
named, the rest kept) and submits; the approver gets the notice by mail and approves; the
operator runs it; the batch shows `done` with the verification report: every ID present or
excluded with a reason (one participant withdrew after the upload: "excluded: sharing scope").
Exporting it again replaces its rows instead of adding any.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.db import transaction, utcnow
from dutydesk.jobs import service as jobs
from dutydesk.jobs.models import Job
from dutydesk.people import service as people
from dutydesk.records import service as records_service
from tests.browser_support import EXPECT_TIMEOUT_MS, launched_chromium
from tests.intake.desk_server import serving_desk
from tests.mail_support import MailInbox, smtp_server
from tests.runbooks.test_redrive import (
    store,  # noqa: F401 (a fixture)
    warehouse_rows,
)

PASSWORD = "redrive walk password"


@pytest.fixture
def mailbox(monkeypatch: pytest.MonkeyPatch) -> Iterator[MailInbox]:
    """A real SMTP server on loopback that the desk's outgoing mail goes to."""
    with smtp_server(monkeypatch) as inbox:
        yield inbox


@pytest.fixture
def desk(
    tmp_path: Path,
    store: sessionmaker[Session],  # noqa: F811
    mailbox: MailInbox,
) -> Iterator[tuple[str, sessionmaker[Session]]]:
    """The app under uvicorn on a fresh migrated SQLite database; its URL and sessions."""
    with serving_desk(tmp_path) as (base, factory):
        with transaction(factory) as session:
            people.add_user(
                session, "olga", "operator", email="olga@desk.example", password=PASSWORD
            )
            people.add_user(session, "abe", "approver", email="abe@desk.example", password=PASSWORD)
        yield base, factory


def work(factory: sessionmaker[Session]) -> None:
    """What the worker and beat would do: the tick's due work, then every queued job."""
    jobs.tick(factory)
    while True:
        with factory() as session:
            queued = session.scalars(
                select(Job.id).where(Job.state == "queued", Job.run_after <= utcnow())
            ).all()
        if not queued:
            return
        for job_id in queued:
            assert jobs.execute(job_id, "walk-worker", factory) == "succeeded"
        jobs.tick(factory)


def signed_in(browser: Browser, base: str, username: str) -> Page:
    page = browser.new_context(base_url=base).new_page()
    page.set_default_timeout(EXPECT_TIMEOUT_MS)
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    return page


@pytest.mark.browser
def test_the_monthly_redrive_walk(
    desk: tuple[str, sessionmaker[Session]],
    mailbox: MailInbox,
    store: sessionmaker[Session],  # noqa: F811
    tmp_path: Path,
) -> None:
    base, factory = desk
    with launched_chromium() as browser:
        olga = signed_in(browser, base, "olga")
        olga.get_by_role("navigation").get_by_role("link", name="Re-drives").click()
        olga.get_by_role("button", name=re.compile("Open this month's batch")).click()
        expect(olga.locator("#batch-state")).to_have_text("open")
        batch_path = olga.url.removeprefix(base)

        form = olga.locator("#add-ids")
        form.get_by_label("Study").fill("study-a")
        form.get_by_label("Reason").fill("PROJ-12: uploads that failed in November")
        form.get_by_label("Record IDs, one per line").fill("r-a1\nr-a2\nr-w1\nr-a1\n")
        form.get_by_role("button", name="Add").click()
        expect(olga.locator("#add-report-1")).to_contain_text("3 added, 1 duplicate merged (r-a1)")

        listed = tmp_path / "more-ids.txt"
        listed.write_text("r-a3\nnot-a-record\nr-a4\n")
        form = olga.locator("#add-ids")
        form.get_by_label("Reason").fill("PROJ-12: uploads that failed in November")
        form.get_by_label("or a text file of one ID per line").set_input_files(str(listed))
        form.get_by_role("button", name="Add").click()
        report = olga.locator("#add-report-1")
        expect(report).to_contain_text("2 added, 1 refused")
        expect(report.locator(".refused")).to_have_text("line 2: unknown record ID 'not-a-record'")
        expect(olga.locator("#batch-count")).to_have_text("5")

        olga.get_by_role("button", name="Submit for signoff").click()
        expect(olga.locator("#batch-state")).to_have_text("pending")
        work(factory)
        notices = [m for m in mailbox.messages if "abe@desk.example" in m["X-Rcpt"]]
        assert len(notices) == 1, [m["Subject"] for m in mailbox.messages]
        text = notices[0].get_payload(decode=True)
        body = text.decode() if isinstance(text, bytes) else str(notices[0].get_payload())
        assert "Signoff needed" in str(notices[0]["Subject"]) + body
        link = re.search(r"https?://\S+(/changes/\d+)", body)
        assert "Re-drive batch" in body and link, body

        # The approver follows the notice's link to the change, and from it to the batch.
        abe = signed_in(browser, base, "abe")
        abe.goto(link.group(1))
        abe.locator("#change-detail").click()
        expect(abe).to_have_url(base + batch_path)
        abe.get_by_role("button", name="Approve version 1").click()
        expect(abe.locator("#batch-state")).to_have_text("approved")
        expect(abe.locator("#signoffs")).to_contain_text("abe")

        # The participant behind r-w1 withdraws after the upload, before the run.
        with store() as records:
            records_service.set_participant_scope(records, "study-a", "hc-w", "NO_SHARING")
            records.commit()

        olga.reload()
        olga.get_by_role("button", name="Run the re-drive").click()
        work(factory)
        olga.reload()
        expect(olga.locator("#batch-state")).to_have_text("done")
        expect(olga.locator("#missing-count")).to_have_text("Missing without a reason: 0")
        expect(olga.locator("#verification-summary")).to_contain_text("4 present")
        expect(olga.locator("#verification-summary")).to_contain_text("1 excluded: sharing scope")
        row = olga.locator("#not-present tbody tr")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("r-w1")
        expect(row).to_contain_text("excluded: sharing scope")
        with olga.expect_download() as download:
            olga.get_by_role("link", name="Download the report (CSV)").click()
        lines = Path(download.value.path()).read_text().splitlines()
        assert lines[0] == "record_id,study,reason_added,outcome,detail"
        assert sorted(line.split(",")[0] for line in lines[1:]) == [
            "r-a1",
            "r-a2",
            "r-a3",
            "r-a4",
            "r-w1",
        ]

        # Exporting the batch again replaces its rows: no record is in a table twice.
        before = warehouse_rows(tmp_path / "warehouse")
        assert before["study-a-walk-v1"] == 4
        olga.get_by_role("button", name="Export again").click()
        expect(olga.locator("#batch-state")).to_have_text("running")
        work(factory)
        olga.reload()
        expect(olga.locator("#batch-state")).to_have_text("done")
        assert warehouse_rows(tmp_path / "warehouse") == before
