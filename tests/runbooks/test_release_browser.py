"""A real `dutydesk up --demo` and Debian's Chromium walk the team's deploy template: notices
that land in the demo's SMTP catcher (aiosmtpd), the broadcast on the public endpoint and on
every page, a verified backup, an allowed command, a signoff by a second person, the
broadcast off and the last notice."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser_support import (
    Desk,
    desk_context,
    desk_env,
    free_port,
    launched_chromium,
    stop_desk,
    wait_until_healthy,
)

PASSWORD = "release-walk-password-1"
STEP_TIMEOUT_MS = 45_000  # a step run by the worker: the job's start and the page's refresh


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    """`dutydesk up --demo` with the deploy's switch-image command listed in settings."""
    home = tmp_path_factory.mktemp("release-desk") / "home"
    home.mkdir(parents=True)
    port = free_port()
    env = desk_env(home, PASSWORD)
    env["DUTYDESK_RELEASE_COMMANDS"] = json.dumps(
        {"switch-image": [sys.executable, "-c", "print('image 1.4.0 switched in')"]}
    )
    env["DUTYDESK_BASE_URL"] = f"http://127.0.0.1:{port}"
    log_path = home.parent / "desk-output.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "dutydesk", "up", "--demo", "--port", str(port)],
        env=env,
        cwd=home,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    running = Desk(process, home, f"http://127.0.0.1:{port}", PASSWORD, log_path, log_file)
    try:
        wait_until_healthy(running, timeout=90)
        yield running
    finally:
        print(stop_desk(running))


@pytest.fixture
def page(desk: Desk) -> Iterator[Page]:
    """A fresh Chromium page on the desk."""
    with launched_chromium() as browser, desk_context(browser, desk) as context:
        yield context.new_page()


def sign_in(page: Page, username: str) -> None:
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def wait_for(page: Page, number: int, state: str) -> None:
    """Wait (the page refreshes itself) until step `number` is in `state`."""
    expect(page.locator(f"#step-{number}")).to_have_attribute(
        "data-state", state, timeout=STEP_TIMEOUT_MS
    )


def tick(page: Page, number: int) -> None:
    wait_for(page, number, "waiting")
    page.locator(f"#step-{number}").get_by_role("button", name="Done").click()
    expect(page.locator(f"#step-{number}")).to_have_attribute("data-state", "done")


def active(desk: Desk) -> list[str]:
    answer = httpx.get(f"{desk.base_url}/api/v1/broadcasts/active", timeout=5)
    assert answer.status_code == 200
    return [item["message"] for item in answer.json()["broadcasts"]]


@pytest.mark.browser
def test_the_deploy_template_walked_on_the_demo(page: Page, desk: Desk) -> None:
    sign_in(page, "olga")
    page.get_by_role("navigation").get_by_role("link", name="Releases", exact=True).click()
    expect(page.locator("#releases")).to_contain_text("1.3.0")  # the demo's past release
    page.locator("#plan-release summary").click()
    page.get_by_label("Version").fill("1.4.0")
    page.get_by_label("Title", exact=True).fill("Study dashboard")
    page.get_by_role("button", name="Plan release").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("deploy 1.4.0")
    release_path = page.url.removeprefix(desk.base_url)
    page.get_by_role("button", name="Start the release").click()

    tick(page, 1)  # agree a time with core users (a MINOR release: not skipped)
    tick(page, 2)  # change-control form
    wait_for(page, 3, "done")  # notify users by e-mail
    wait_for(page, 4, "done")  # broadcast on
    assert active(desk) == ["Release 1.4.0 in progress: the portal may be unavailable for a while"]
    page.reload()
    expect(page.locator("aside[data-broadcast]")).to_contain_text("Release 1.4.0 in progress")
    for number in (5, 6, 7, 8):  # staging config, tag, upload, stop
        tick(page, number)
    wait_for(page, 9, "done")  # a verified backup of the desk's own database
    expect(page.locator("#step-9")).to_contain_text("verified backup")
    wait_for(page, 10, "done")  # the allowed command
    page.locator("#step-10 summary", has_text="output").click()
    expect(page.locator("#step-10")).to_contain_text("image 1.4.0 switched in")
    tick(page, 11)  # migrations
    tick(page, 12)  # start
    wait_for(page, 13, "done")  # health check
    wait_for(page, 14, "done")  # broadcast: acceptance test
    assert active(desk) == ["Acceptance test in progress, please wait"]
    wait_for(page, 15, "waiting")  # the acceptance test's signoff
    page.goto("/tickets")
    expect(page.locator("aside[data-broadcast]")).to_contain_text("Acceptance test in progress")

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, "ada")  # a second person, an approver
    page.goto(release_path)
    page.locator("#step-15").get_by_placeholder("comment").fill("acceptance test passed")
    page.locator("#step-15").get_by_role("button", name="Sign off").click()
    wait_for(page, 16, "done")  # e-mail users: done
    wait_for(page, 17, "done")  # broadcast off
    expect(page.locator("#release-state")).to_contain_text("done", timeout=STEP_TIMEOUT_MS)
    assert active(desk) == []
    expect(page.locator("#release-timeline")).to_contain_text(
        "step 15 (Acceptance test) signed: acceptance test passed"
    )
    page.reload()
    expect(page.locator("aside[data-broadcast]")).to_have_count(0)

    page.get_by_role("navigation").get_by_role("link", name="Demo mailbox").click()
    for subject in ("Release 1.4.0 of the study portal", "Release 1.4.0 is done"):
        caught = page.locator("article.caught-mail", has_text=subject)
        for _ in range(60):  # the worker sends the notices; the catcher keeps them
            if caught.count():
                break
            page.wait_for_timeout(1000)
            page.reload()
        expect(caught.first).to_be_visible()
