"""The log report's times: on the console page in the reader's time zone (ISO with the offset,
as other pages), in the HTML file from the command in UTC, saying so."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from dutydesk.people import service as people
from tests.conftest import make_user, sign_in
from tests.logs.test_report_html import dutydesk, write_timed_logs

MOMENT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?::\d{2})?([+-]\d{2}:\d{2})")


def moments(section: str) -> set[str]:
    """The offsets of the moments in the report's summary and slowest requests."""
    return set(MOMENT.findall(section))


def test_the_console_report_shows_times_in_the_readers_zone(
    client: TestClient, db: Session, log_root: Path
) -> None:
    write_timed_logs(log_root, files=1, lines=40)
    user = make_user(db, "viewer", "berta")
    people.set_time_zone(user, "Europe/Berlin")
    db.commit()
    sign_in(client, db, user)
    page = client.get("/logs/report", params={"glob": str(log_root / "site*" / "*.gz")})
    assert page.status_code == 200, page.text
    summary = page.text.split('id="timeline"', 1)[0]
    assert "From the hour of " in summary and "UTC" not in summary.split("<h1>", 1)[1]
    assert moments(summary) == {"+01:00"}, "November in Berlin"
    slowest = page.text.split('data-seconds="', 1)[1].split("</tr>", 1)[0]
    assert moments(slowest) == {"+01:00"}


def test_the_html_file_stays_in_utc_and_says_so(log_root: Path, tmp_path: Path) -> None:
    write_timed_logs(log_root, files=1, lines=40)
    target = tmp_path / "report.html"
    result = dutydesk("report", str(log_root), "--html", str(target))
    assert result.exit_code == 0, result.output
    html = target.read_text()
    assert "times in UTC" in html
    assert moments(html.split("</table>", 1)[0]) == {"+00:00"}
