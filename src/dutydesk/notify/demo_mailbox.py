"""The console's Demo mailbox page: the mail the demo's catcher took in, newest first.

It exists only while `DUTYDESK_DEMO_MAILBOX` is on (`dutydesk up --demo` sets it); otherwise
the page is not found and the navigation has no link to it.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from starlette.responses import HTMLResponse

from dutydesk.notify.democatcher import caught_mails, mailbox_dir
from dutydesk.settings import get_settings
from dutydesk.web.access import ViewerPage
from dutydesk.web.templating import render, templates

router = APIRouter()
PAGE = "/demo/mailbox"


def demo_mailbox_on() -> bool:
    """Whether the demo mail catcher runs, so the layout links to its page."""
    return get_settings().demo_mailbox


templates.env.globals["demo_mailbox_on"] = demo_mailbox_on


@router.get(PAGE, response_class=HTMLResponse)
def demo_mailbox(request: Request, _who: ViewerPage) -> HTMLResponse:
    """Every message the demo's outgoing mail server caught, newest first."""
    settings = get_settings()
    if not settings.demo_mailbox:
        raise HTTPException(404, "There is no demo mailbox: the desk was not started with --demo.")
    return render(
        request,
        "notify/demo_mailbox.html",
        {"mails": caught_mails(settings), "folder": mailbox_dir(settings)},
    )
