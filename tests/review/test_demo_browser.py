"""On the demo desk in a real Chromium: an export run's page charts its records and unique
participants per study against the last runs (canvases present and not blank) at 1366 and
390 px wide, and the review lists the demo week's halving first with a link to its chart;
screenshots kept under the test's tmp_path."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser_support import (
    DEMO_DESK_GROUP,
    Desk,
    desk_context,
    launched_chromium,
)
from tests.test_browser import CANVAS_DRAWN, sign_in

pytestmark = DEMO_DESK_GROUP  # one worker runs every test on the shared demo desk


@pytest.fixture
def desk(demo_desk: Desk) -> Desk:
    """The demo desk these browser modules share (see `demo_desk`)."""
    return demo_desk


@pytest.fixture
def page(desk: Desk) -> Iterator[Page]:
    """A fresh browser context on the desk, in Debian's headless Chromium."""
    browser: Browser
    with launched_chromium() as browser, desk_context(browser, desk) as context:
        yield context.new_page()


@pytest.mark.browser
@pytest.mark.timeout(600)  # the demo desk starts first, slow on a busy machine
def test_an_export_runs_page_charts_its_studies_against_the_last_runs(
    page: Page, desk: Desk, tmp_path: Path
) -> None:
    page.goto("/login")
    sign_in(page, "admin", desk.password)
    page.goto("/exports")
    links = page.locator("a[href^='/exports/']").evaluate_all("els => els.map(e => e.pathname)")
    runs = sorted(int(m.group(1)) for p in links if (m := re.fullmatch(r"/exports/(\d+)", p)))
    assert len(runs) >= 2, links
    # The newest past night (the very newest may still be running).
    page.goto(f"/exports/{runs[-2]}")
    expect(page.get_by_role("heading", name="Against the last runs")).to_be_visible()
    for width, height in ((1366, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.reload()
        canvases = page.locator("#run-history canvas")
        expect(canvases.first).to_be_visible()
        assert canvases.count() == 2, "records and unique participants, one chart each"
        for index in range(canvases.count()):
            canvas = canvases.nth(index)
            box = canvas.bounding_box()
            assert box is not None and 0 < box["width"] <= width
            assert canvas.evaluate(CANVAS_DRAWN), f"chart {index} is blank at {width} px"
        page.screenshot(path=tmp_path / f"export-run-{width}.png", full_page=True)


CHARTS_FIT = """() => ({page: document.documentElement.scrollWidth, width: window.innerWidth})"""


@pytest.mark.browser
@pytest.mark.timeout(600)  # the demo desk starts first, slow on a busy machine
def test_the_review_charts_its_moved_series_tickets_and_records_at_desk_and_phone_widths(
    page: Page, desk: Desk, tmp_path: Path
) -> None:
    page.goto("/login")
    sign_in(page, "admin", desk.password)
    page.goto("/review")
    expect(page.get_by_role("heading", name="Weekly review", level=1)).to_be_visible()
    for width, height in ((1366, 900), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        page.reload()
        trends = page.locator("#review-trends div.chart canvas")
        expect(trends.first).to_be_visible()
        counts = page.locator("#review-tickets div.counts-chart canvas")
        expect(counts.first).to_be_visible()
        canvases = page.locator("div.chart canvas, div.counts-chart canvas")
        assert canvases.count() >= 3, "a moved series, tickets per week, records per day"
        for index in range(canvases.count()):
            canvas = canvases.nth(index)
            canvas.scroll_into_view_if_needed()
            box = canvas.bounding_box()
            assert box is not None and 0 < box["width"] <= width
            assert canvas.evaluate(CANVAS_DRAWN), f"review chart {index} is blank at {width} px"
        fits = page.evaluate(CHARTS_FIT)
        assert fits["page"] <= fits["width"], f"the review scrolls sideways at {width} px: {fits}"
        page.screenshot(path=tmp_path / f"review-{width}.png", full_page=True)
