"""The console in a real Chromium against a real `dutydesk up --demo`: sign in, look, sign out.

Chromium comes from Debian (/usr/bin/chromium); Playwright only drives it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Request, Response, expect

from dutydesk.demo import DEMO_ACTOR
from dutydesk.people.demo import DEMO_USERS
from tests.browser_support import (
    DEMO_DESK_GROUP,
    Desk,
    desk_context,
    launched_chromium,
)

pytestmark = DEMO_DESK_GROUP  # one worker runs every test on the shared demo desk


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
    """A fresh browser context (no cookies) on the desk; prints the desk's output afterwards."""
    with desk_context(chromium, desk) as context:
        yield context.new_page()


@pytest.fixture
def broken_assets(page: Page) -> list[str]:
    """Stylesheets, scripts and other non-page resources that failed to load, as they happen."""
    broken: list[str] = []

    def on_response(response: Response) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            broken.append(f"{response.status} {response.url}")

    def on_failure(request: Request) -> None:
        broken.append(f"{request.failure} {request.url}")

    page.on("response", on_response)
    page.on("requestfailed", on_failure)
    return broken


def sign_in(page: Page, username: str, password: str) -> None:
    """Fill the sign-in form and submit it."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def url(desk: Desk, path: str) -> re.Pattern[str]:
    """A pattern matching exactly `path` on the desk."""
    return re.compile(re.escape(desk.base_url + path) + "$")


@pytest.mark.browser
def test_admin_signs_in_reads_the_audit_log_and_signs_out(
    page: Page, desk: Desk, broken_assets: list[str], tmp_path: Path
) -> None:
    page.goto("/")
    expect(page).to_have_url(url(desk, "/login?next=/"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    sign_in(page, "admin", desk.password)
    expect(page).to_have_url(url(desk, "/"))
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    header = page.locator("body > header")
    expect(header).to_contain_text("admin (admin)")
    expect(page.locator("#desk-health")).to_contain_text("database")
    page.screenshot(path=tmp_path / "overview.png", full_page=True)

    page.get_by_role("navigation").get_by_role("link", name="Audit", exact=True).click()
    expect(page).to_have_url(url(desk, "/audit"))
    expect(page.get_by_role("heading", name="Audit log", level=1)).to_be_visible()
    # The demo makes more than a page of changes: filter to people with the page's own form
    # (which sends its blank fields too).
    page.locator('select[name="object_type"]').select_option("users")
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(r"/audit\?.*object_type=users"))
    demo_user_creations = (
        page.locator("#audit-events tbody tr")
        .filter(has=page.locator("td:nth-child(2)", has_text=re.compile(f"^{DEMO_ACTOR}$")))
        .filter(has=page.locator("td:nth-child(3)", has_text=re.compile("^create$")))
        .filter(has=page.locator("td:nth-child(4)", has_text=re.compile(r"^users\b")))
    )
    expect(demo_user_creations).to_have_count(len(DEMO_USERS))
    for username, _role, _email in DEMO_USERS:
        expect(
            demo_user_creations.filter(has_text=re.compile(rf"username: {username}\b"))
        ).to_have_count(1)
    page.screenshot(path=tmp_path / "audit.png", full_page=True)

    header.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(url(desk, "/login"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(header).not_to_contain_text("admin (admin)")

    page.goto("/audit")
    expect(page).to_have_url(url(desk, "/login?next=/audit"))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert broken_assets == [], "stylesheets or scripts failed to load"


@pytest.mark.browser
def test_wrong_password_shows_an_error_and_no_session(
    page: Page, desk: Desk, broken_assets: list[str]
) -> None:
    page.goto("/login")
    sign_in(page, "admin", desk.password + "-wrong")

    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    expect(page).to_have_url(url(desk, "/login"))
    expect(page.get_by_role("button", name="Sign out")).to_have_count(0)
    page.goto("/")
    expect(page).to_have_url(url(desk, "/login?next=/"))
    assert broken_assets == [], "stylesheets or scripts failed to load"


@pytest.mark.browser
def test_the_export_schedules_are_in_the_navigation_with_the_demos_nightly_schedule(
    page: Page, desk: Desk
) -> None:
    page.goto("/login")
    sign_in(page, "admin", desk.password)
    navigation = page.get_by_role("navigation")
    navigation.get_by_role("link", name="Export schedules", exact=True).click()
    expect(page).to_have_url(url(desk, "/exports/schedules"))
    expect(page.get_by_role("heading", name="Export schedules", level=1)).to_be_visible()
    expect(page.locator("#schedules tbody tr", has_text="nightly")).to_have_count(1)
    # Only the entry of this page is marked current, not Exports above it.
    expect(navigation.locator('[aria-current="page"]')).to_have_text("Export schedules")


@pytest.mark.browser
def test_the_demo_starts_green_and_its_mailbox_shows_a_test_notice(page: Page, desk: Desk) -> None:
    page.goto("/login")
    sign_in(page, "admin", desk.password)
    page.get_by_role("navigation").get_by_role("link", name="Notify", exact=True).click()
    expect(page.locator("#self-check")).to_contain_text("ok")
    first_channel = page.locator("form[action$='/test']").first
    first_channel.get_by_role("button", name="Send test").click()

    page.get_by_role("navigation").get_by_role("link", name="Demo mailbox").click()
    expect(page.get_by_role("heading", name="Demo mailbox", level=1)).to_be_visible()
    caught = page.locator("article.caught-mail", has_text="dutydesk test notice")
    # The worker sends the notice and the catcher keeps it; the page shows it on a reload.
    for _ in range(90):
        if caught.count():
            break
        page.wait_for_timeout(1000)
        page.reload()
    expect(caught.first).to_be_visible()


CANVAS_DRAWN = """canvas => {
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  for (let alpha = 3; alpha < pixels.length; alpha += 4) { if (pixels[alpha]) { return true; } }
  return false;
}"""


@pytest.mark.browser
def test_the_overview_draws_the_export_sparkline_and_shows_every_process_alive(
    page: Page, desk: Desk, broken_assets: list[str], tmp_path: Path
) -> None:
    page.goto("/login")
    sign_in(page, "admin", desk.password)
    expect(page).to_have_url(url(desk, "/"))
    alive = page.locator("#processes td.ok")
    # web, worker, beat and smtp record a heartbeat as they start.
    for _ in range(30):
        if alive.count() == 4:
            break
        page.wait_for_timeout(1000)
        page.reload()
    for role in ("web", "worker", "beat", "smtp"):
        expect(page.locator(f"#process-{role} td.ok")).to_have_count(1)
    for width, height in ((1366, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.reload()
        canvas = page.locator("#export-sparkline canvas")
        expect(canvas).to_have_count(1)
        box = canvas.bounding_box()
        assert box is not None and 0 < box["width"] <= width
        assert canvas.evaluate(CANVAS_DRAWN), f"the sparkline is blank at {width} px"
        page.screenshot(path=tmp_path / f"overview-{width}.png", full_page=True)
    assert broken_assets == [], "stylesheets or scripts failed to load"


NAV_FITS = """() => {
  const nav = document.querySelector('body > header nav');
  const width = window.innerWidth;
  const outside = [...nav.querySelectorAll('a, button')]
    .map(el => [el.textContent.trim(), el.getBoundingClientRect()])
    .filter(([, box]) => box.width > 0 && (box.left < 0 || box.right > width))
    .map(([label]) => label);
  return {page: document.documentElement.scrollWidth, nav: nav.scrollWidth, width, outside,
          height: nav.getBoundingClientRect().height};
}"""


@pytest.mark.browser
def test_the_navigation_fits_a_laptop_screen_and_a_phone(
    page: Page, desk: Desk, tmp_path: Path
) -> None:
    page.goto("/login")
    sign_in(page, "admin", desk.password)  # the admin sees every entry
    expect(page).to_have_url(url(desk, "/"))
    page.set_viewport_size({"width": 1366, "height": 768})
    page.goto("/jobs")
    fit = page.evaluate(NAV_FITS)
    page.screenshot(path=tmp_path / "nav-1366.png")
    assert fit["outside"] == [] and fit["page"] <= 1366, fit
    # Every entry shows, in a header that leaves most of the screen to the page.
    expect(page.get_by_role("link", name="Audit", exact=True)).to_be_visible()
    expect(page.get_by_text("Menu", exact=True)).to_be_hidden()
    assert fit["height"] <= 768 / 4, f"the navigation is {fit['height']} px tall at 1366 px"
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto("/jobs")
    folded = page.evaluate(NAV_FITS)
    page.screenshot(path=tmp_path / "nav-390.png")
    assert folded["page"] <= 390 and folded["height"] <= 844 / 8, folded
    expect(page.get_by_role("link", name="Audit", exact=True)).to_be_hidden()
    page.get_by_text("Menu", exact=True).click()
    opened = page.evaluate(NAV_FITS)
    page.screenshot(path=tmp_path / "nav-390-open.png")
    assert opened["outside"] == [] and opened["nav"] <= 390 and opened["page"] <= 390, opened
    page.get_by_role("link", name="Audit", exact=True).click()
    expect(page).to_have_url(url(desk, "/audit"))
