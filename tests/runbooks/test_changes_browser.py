"""The change page in Debian's Chromium: an approver finds the request waiting for them,
reads its evidence hash and approves it; the page then shows it approved and the run form
appears for the author."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.db import transaction
from dutydesk.runbooks import submit_change
from tests.browser_support import EXPECT_TIMEOUT_MS, launched_chromium
from tests.conftest import TEST_PASSWORD
from tests.intake.desk_server import serving_desk
from tests.runbooks.changes_kit import make_people, new_change


@pytest.fixture
def served(
    tmp_path: Path, shared_records_factory: sessionmaker[Session]
) -> Iterator[tuple[str, sessionmaker[Session]]]:
    """The web app on a migrated SQLite file, served by uvicorn on a free port."""
    with serving_desk(tmp_path, shared_records_factory) as served:
        yield served


def sign_in(page: Page, username: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()


@pytest.mark.browser
def test_an_approver_approves_a_waiting_request_on_its_page(
    served: tuple[str, sessionmaker[Session]],
) -> None:
    base_url, factory = served
    with transaction(factory) as session:
        people = make_people(session)
        change = new_change(session, people.olga)
        submit_change(session, change, people.olga)
        number, digest = change.id, change.evidence_hash
    with launched_chromium() as browser:
        context = browser.new_context(base_url=base_url)
        context.set_default_timeout(EXPECT_TIMEOUT_MS)
        page = context.new_page()
        sign_in(page, "abe")
        page.get_by_role("link", name="Changes", exact=True).click()
        page.locator("#waiting").get_by_role("link", name="Re-export two records").click()
        expect(page.locator("#evidence-hash")).to_have_text(digest)
        expect(page.locator("#rules-missing")).to_contain_text("1 more signoff from approver")
        page.get_by_role("button", name="Approve version 1").click()
        expect(page.locator("#change-state")).to_have_text("approved")
        expect(page.locator("#rules-met")).to_be_visible()
        expect(page.locator("#change-signoffs")).to_contain_text("abe")
        context.clear_cookies()
        sign_in(page, "olga")
        page.goto(f"/changes/{number}")
        expect(page.get_by_role("button", name="Run")).to_be_visible()
        context.close()
