"""The weekly meeting in a real Chromium against a real `dutydesk up --demo`.

Open "Open, unassigned", assign a ticket to me, add a note, close it with a tracker link, then
find it by searching a word that appears only in that note. Chromium comes from Debian.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser_support import (
    DEMO_DESK_GROUP,
    DEMO_PASSWORD,
    Desk,
    desk_context,
    launched_chromium,
)

pytestmark = DEMO_DESK_GROUP  # one worker runs every test on the shared demo desk
NOTE_WORD = "axolotl"  # in no demo ticket, so only this test's note can match


@pytest.fixture
def desk(demo_desk: Desk) -> Desk:
    """The demo desk these browser modules share (see `demo_desk`)."""
    return demo_desk


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium; fails (never skips) when missing."""
    with launched_chromium() as browser:
        yield browser


@pytest.fixture
def page(chromium: Browser, desk: Desk) -> Iterator[Page]:
    """A fresh browser context signed in as the operator olga."""
    with desk_context(chromium, desk) as context:
        page = context.new_page()
        page.goto("/login")
        page.get_by_label("Username").fill("olga")
        page.get_by_label("Password").fill(DEMO_PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
        yield page


@pytest.mark.browser
def test_the_weekly_meeting_flow(page: Page) -> None:
    page.get_by_role("navigation").get_by_role("link", name="Tickets", exact=True).click()
    expect(page.get_by_role("heading", name="Open, unassigned", level=1)).to_be_visible()
    first_row = page.locator("#tickets tbody tr[data-key]").first
    key = first_row.get_attribute("data-key")
    assert key and re.fullmatch(r"DD-\d+", key)

    first_row.get_by_role("link", name=key, exact=True).click()
    expect(page.locator("#ticket-key")).to_have_text(key)
    page.get_by_role("button", name="Assign to me").click()
    expect(page.locator("#ticket-assignee")).to_have_text("olga")

    page.get_by_label("Add a note (Markdown)").fill(
        f"Checked with the storage team: the {NOTE_WORD} volume was full. <script>x()</script>"
    )
    page.get_by_role("button", name="Add note").click()
    note = page.locator("#ticket-notes article.note").last
    expect(note).to_contain_text(f"the {NOTE_WORD} volume was full")
    expect(note).to_contain_text("<script>x()</script>")  # shown as text, not run

    close = page.locator("#close")
    close.get_by_label("Resolution").fill("Volume grown by 50 GB")
    close.get_by_label("Tracker issue URL").fill("https://tracker.example/browse/OPS-4711")
    close.get_by_role("button", name="Close").click()
    expect(page.locator("#ticket-status")).to_have_text("closed")
    expect(page.locator("#ticket-links")).to_contain_text("OPS-4711")

    page.get_by_role("link", name="Open, unassigned").click()
    expect(page.locator(f'#tickets tr[data-key="{key}"]')).to_have_count(0)

    page.get_by_role("link", name="All", exact=True).click()
    page.get_by_label("Search").fill(NOTE_WORD)
    page.get_by_role("button", name="Show").click()
    rows = page.locator("#tickets tbody tr[data-key]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-key", key)
    expect(rows.first.locator("mark")).to_have_text(re.compile(NOTE_WORD, re.I))


@pytest.mark.browser
def test_keyboard_shortcuts_move_and_assign_to_me(page: Page) -> None:
    page.goto("/tickets")
    rows = page.locator("#tickets tbody tr[data-key]")
    second = rows.nth(1).get_attribute("data-key")
    page.keyboard.press("j")
    page.keyboard.press("j")
    expect(rows.nth(1)).to_have_class(re.compile(r"\bselected\b"))
    page.keyboard.press("k")
    page.keyboard.press("j")
    page.keyboard.press("a")
    expect(page.locator(f'#tickets tr[data-key="{second}"]')).to_have_count(0)
    page.goto(f"/tickets/{second}")
    expect(page.locator("#ticket-assignee")).to_have_text("olga")
    page.goto("/tickets")
    page.keyboard.press("j")
    page.keyboard.press("n")
    expect(page).to_have_url(re.compile(r"/tickets/DD-\d+#add-note$"))
    expect(page.get_by_label("Add a note (Markdown)")).to_be_focused()


@pytest.mark.browser
def test_a_search_from_the_meeting_list_points_to_closed_matches(page: Page) -> None:
    word = "tapir"  # in no demo ticket
    page.goto("/tickets")
    key = page.locator("#tickets tbody tr[data-key]").first.get_attribute("data-key")
    assert key
    page.goto(f"/tickets/{key}")
    page.get_by_role("button", name="Assign to me").click()
    expect(page.locator("#ticket-assignee")).to_have_text("olga")
    expect(page.get_by_role("button", name="Assign to me")).to_have_count(0)
    page.get_by_label("Add a note (Markdown)").fill(f"The {word} job restarted it.")
    page.get_by_role("button", name="Add note").click()
    page.locator("#close").get_by_role("button", name="Close").click()
    expect(page.locator("#ticket-status")).to_have_text("closed")

    page.get_by_role("link", name="Open, unassigned").click()
    page.get_by_label("Search").fill(word)
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#tickets tbody tr[data-key]")).to_have_count(0)
    expect(page.locator("#list-count")).to_contain_text(f"0 tickets matching {word}")
    elsewhere = page.locator("#search-elsewhere")
    expect(elsewhere).to_have_text("1 more among closed or assigned tickets: search all tickets.")
    elsewhere.get_by_role("link", name="search all tickets").click()
    expect(page.get_by_role("heading", name="All", level=1)).to_be_visible()
    rows = page.locator("#tickets tbody tr[data-key]")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-key", key)
    expect(page.locator("#list-count")).to_contain_text(f"1 ticket matching {word}")

    since = page.get_by_label("First seen from")
    since.fill("2000-01-01")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"since=2000-01-01"))
    expect(page.get_by_label("First seen from")).to_have_value("2000-01-01")
    expect(rows).to_have_count(1)


@pytest.mark.browser
def test_the_alarms_page_names_tickets_by_their_keys(page: Page) -> None:
    page.goto("/alarms")
    links = page.locator('a[href^="/tickets/"]')
    expect(links.first).to_have_text(re.compile(r"^DD-\d+$"))
    texts = links.all_inner_texts()
    assert texts and all(re.fullmatch(r"DD-\d+", text) for text in texts)


@pytest.mark.browser
def test_the_log_sources_page_lists_the_demos_source(page: Page) -> None:
    page.goto("/log-sources")
    row = page.locator("#log-sources tbody tr", has_text="export-worker")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("/logs/export-worker/*.log*")
