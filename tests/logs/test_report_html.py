"""`dutydesk logs report` and /logs/report against counts made independently with gzip and re."""

from __future__ import annotations

import datetime as dt
import gzip
import random
import re
from collections import Counter
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session
from typer.testing import CliRunner, Result

from dutydesk.cli import app
from dutydesk.logs._htmlreport import bot_of, regex_literal
from tests.conftest import make_user, sign_in

START = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
EVIL_PATH = "/search?q=<script>alert('path')</script>"
EVIL_AGENT = "Mozilla/5.0 <script>alert('agent')</script>"
PATHS = ["/", "/api/items", "/static/app.js", "/login", EVIL_PATH]
AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/8.5.0",
    "python-requests/2.31.0",
    EVIL_AGENT,
]
REFERRERS = ["-", "https://example.org/", "https://news.example.com/item?id=7"]
LINE = re.compile(
    r'^(\S+) \S+ \S+ \[([^\]]+)\] "(\S+) (.+?) (\S+)" (\d{3}) (\S+) "([^"]*)" "([^"]*)" (\S+)$'
)


def write_timed_logs(folder: Path, files: int = 4, lines: int = 90, seed: int = 11) -> list[Path]:
    """nginx combined lines with `$request_time` after the agent, over two days, gzipped."""
    rng = random.Random(seed)
    written = []
    for index in range(files):
        path = folder / f"site{index % 2}" / f"access-{index}.log.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt") as handle:
            for _ in range(lines):
                moment = START + dt.timedelta(seconds=rng.randrange(2 * 86_400))
                size = rng.choice(["-", str(rng.randrange(0, 40_000))])
                handle.write(
                    f"10.2.0.{rng.randrange(30)} - - [{moment:%d/%b/%Y:%H:%M:%S +0000}] "
                    f'"GET {rng.choice(PATHS)} HTTP/1.1" {rng.choice([200, 200, 301, 404, 500])} '
                    f'{size} "{rng.choice(REFERRERS)}" "{rng.choice(AGENTS)}" '
                    f"{rng.randrange(1, 4000) / 1000:.3f}\n"
                )
        written.append(path)
    return written


@dataclass
class Expected:
    requests: int
    statuses: Counter[str]
    paths: Counter[str]
    visitors: int
    bytes: int
    slowest: float
    bots: int


def count_independently(files: list[Path]) -> Expected:
    """The totals the report should show, from gzip, re and Counter only."""
    statuses: Counter[str] = Counter()
    paths: Counter[str] = Counter()
    visitors = set()
    sent = bots = 0
    slowest = 0.0
    for path in files:
        with gzip.open(path, "rt") as handle:
            for line in handle:
                match = LINE.match(line.rstrip("\n"))
                assert match, line
                client, moment, _, target, _, status, size, _, agent, seconds = match.groups()
                statuses[status] += 1
                paths[target] += 1
                day = dt.datetime.strptime(moment, "%d/%b/%Y:%H:%M:%S %z").date()
                visitors.add((day, client, agent))
                sent += 0 if size == "-" else int(size)
                slowest = max(slowest, float(seconds))
                bots += agent.startswith(("curl/", "python-requests/")) or "Googlebot" in agent
    return Expected(sum(statuses.values()), statuses, paths, len(visitors), sent, slowest, bots)


class Attributes(HTMLParser):
    """Every start tag's attributes, with entities undone, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.scripts += tag == "script"

    def having(self, name: str) -> list[dict[str, str | None]]:
        return [attrs for _, attrs in self.tags if name in attrs]


def parsed(html: str) -> Attributes:
    parser = Attributes()
    parser.feed(html)
    return parser


def dutydesk(*args: str) -> Result:
    return CliRunner().invoke(app, ["logs", *args])


def check_totals(page: Attributes, expected: Expected) -> None:
    (summary,) = page.having("data-requests")
    assert summary["data-requests"] == str(expected.requests)
    assert summary["data-visitors"] == str(expected.visitors)
    assert summary["data-bytes"] == str(expected.bytes)
    assert summary["data-format"] == "nginx"
    codes = {
        attrs["data-status"]: int(attrs["data-count"] or 0) for attrs in page.having("data-status")
    }
    assert codes == dict(expected.statuses)
    rows = page.having("data-path")
    top_path, top_hits = expected.paths.most_common(1)[0]
    assert (rows[0]["data-path"], rows[0]["data-hits"]) == (top_path, str(top_hits))
    assert {attrs["data-path"]: int(attrs["data-hits"] or 0) for attrs in rows} == dict(
        expected.paths
    )
    slowest = page.having("data-seconds")
    assert slowest and float(slowest[0]["data-seconds"] or 0) == expected.slowest
    bots = sum(
        int(attrs["data-hits"] or 0)
        for attrs in page.having("data-bot")
        if "data-agent" not in attrs
    )
    assert bots == expected.bots


def test_the_html_report_shows_the_independent_counts_and_escapes_the_logs(
    log_root: Path, tmp_path: Path
) -> None:
    files = write_timed_logs(log_root)
    expected = count_independently(files)
    target = tmp_path / "report.html"
    result = dutydesk("report", str(log_root), "--html", str(target))
    assert result.exit_code == 0, result.output
    assert f"{expected.requests} requests, {expected.visitors} unique visitors" in result.stdout
    html = target.read_text()
    page = parsed(html)
    check_totals(page, expected)
    # Attacker-controlled text arrives as text, never as markup; no script, no fetch.
    assert page.scripts == 0 and "<script>alert" not in html
    assert "&lt;script&gt;alert(&#39;path&#39;)&lt;/script&gt;" in html
    assert any(attrs["data-agent"] == EVIL_AGENT for attrs in page.having("data-agent"))
    assert not re.search(r'(?:src|href)="https?:', html)
    charts = [attrs for tag, attrs in page.tags if tag == "svg"]
    assert [attrs["id"] for attrs in charts] == ["chart-requests", "chart-bytes"]
    assert all(attrs["data-points"] == "48" for attrs in charts)  # two days by the hour


def test_a_second_report_is_answered_from_the_parsed_cache(log_root: Path, tmp_path: Path) -> None:
    files = write_timed_logs(log_root, files=3, lines=60)
    expected = count_independently(files)
    first = dutydesk("report", str(log_root), "--html", str(tmp_path / "one.html"))
    assert first.exit_code == 0, first.output and "parsed" in first.stdout
    second = dutydesk("report", str(log_root), "--html", str(tmp_path / "two.html"))
    assert second.exit_code == 0, second.output
    assert "all from the parsed cache" in second.stdout
    page = parsed((tmp_path / "two.html").read_text())
    (summary,) = page.having("data-cached-bytes")
    assert summary["data-parsed-bytes"] == "0"
    assert int(summary["data-cached-bytes"] or 0) == sum(path.stat().st_size for path in files)
    check_totals(page, expected)
    uncached = dutydesk("report", str(log_root), "--no-cache")
    assert uncached.exit_code == 0 and "all from the parsed cache" not in uncached.stdout


def test_sections_the_format_cannot_fill_say_so(log_root: Path, tmp_path: Path) -> None:
    line = '10.0.0.1 - - [23/Nov/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 12 "-" "curl/8.5.0"\n'
    (log_root / "plain.log").write_text(line * 5)
    target = tmp_path / "plain.html"
    result = dutydesk("report", str(log_root), "--format", "nginx", "--html", str(target))
    assert result.exit_code == 0, result.output
    page = parsed(target.read_text())
    missing = {attrs["data-missing"] for attrs in page.having("data-missing")}
    assert {"request_time", "slowest", "referrers"} <= missing
    assert "$request_time" in target.read_text()


def test_an_application_log_is_refused_with_exit_2(log_root: Path) -> None:
    lines = "2026-11-23 10:00:00,123 INFO  [main] org.example.App - started\n" * 5
    (log_root / "app.log").write_text(lines)
    result = dutydesk("report", str(log_root))
    assert result.exit_code == 2
    assert "a report reads access logs" in result.output
    forced = dutydesk("report", str(log_root), "--format", "java")
    assert forced.exit_code == 2 and "a report reads access logs" in forced.output


def test_filters_and_times_narrow_the_report(log_root: Path, tmp_path: Path) -> None:
    files = write_timed_logs(log_root, files=2, lines=80)
    statuses: Counter[str] = Counter()
    for path in files:
        with gzip.open(path, "rt") as handle:
            for line in handle:
                match = LINE.match(line.rstrip("\n"))
                assert match, line
                if match.group(2).startswith("24/Nov"):
                    statuses[match.group(6)] += 1
    target = tmp_path / "day2.html"
    result = dutydesk(
        "report", str(log_root), "--since", "2026-11-24", "--until", "2026-11-25",
        "--where", "status~^[245]", "--html", str(target),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    page = parsed(target.read_text())
    codes = {
        attrs["data-status"]: int(attrs["data-count"] or 0) for attrs in page.having("data-status")
    }
    assert codes == {code: n for code, n in statuses.items() if code[0] in "245"}


def test_outside_the_roots_is_refused_on_the_command_line(log_root: Path) -> None:
    result = dutydesk("report", "/etc/passwd")
    assert result.exit_code == 2 and "outside the allowed log roots" in result.output


def test_bots_and_literal_regexes() -> None:
    assert bot_of("Mozilla/5.0 (compatible; bingbot/2.0)") == "bingbot"
    assert bot_of("Wget/1.21.4") == "Wget"
    assert bot_of("Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0") is None
    assert bot_of(None) is None
    assert re.fullmatch(regex_literal(EVIL_PATH + "(x)|[y]$^*+"), EVIL_PATH + "(x)|[y]$^*+")


def test_the_console_report_needs_a_login(client: TestClient, log_root: Path) -> None:
    page = client.get("/logs/report", params={"glob": str(log_root)})
    assert page.status_code in (302, 303, 307)
    assert "/login" in page.headers["location"]


def test_a_viewer_sees_the_report_in_the_console(
    client: TestClient, db: Session, log_root: Path
) -> None:
    files = write_timed_logs(log_root, files=2, lines=70)
    expected = count_independently(files)
    sign_in(client, db, make_user(db, "viewer"))
    logs = client.get("/logs")
    assert 'action="/logs/report"' in logs.text
    page = client.get("/logs/report", params={"glob": str(log_root / "site*" / "*.gz")})
    assert page.status_code == 200, page.text
    check_totals(parsed(page.text), expected)
    assert "<script>alert" not in page.text
    assert 'id="chart-requests"' in page.text


@pytest.mark.parametrize(
    ("glob", "message"),
    [("/etc/*", "outside the allowed log roots"), ("relative/*.log", "")],
)
def test_a_glob_outside_the_roots_is_refused_on_the_page(
    client: TestClient, db: Session, log_root: Path, glob: str, message: str
) -> None:
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get("/logs/report", params={"glob": glob})
    assert page.status_code == 422
    assert message in page.text and 'role="alert"' in page.text


def test_an_application_log_is_refused_on_the_page(
    client: TestClient, db: Session, log_root: Path
) -> None:
    (log_root / "app.log").write_text("2026-11-23 10:00:00,123 INFO  [main] org.x.App - up\n" * 3)
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get("/logs/report", params={"glob": str(log_root)})
    assert page.status_code == 422 and "a report reads access logs" in page.text


def test_lines_of_another_format_in_the_glob_are_reported_not_counted(
    log_root: Path, tmp_path: Path
) -> None:
    files = write_timed_logs(log_root, files=2, lines=50)
    expected = count_independently(files)
    (log_root / "site1" / "zz-app.log").write_text("2026-11-23 10:00:00,123 INFO x.Y - up\n" * 4)
    target = tmp_path / "mixed.html"
    result = dutydesk("report", str(log_root), "--html", str(target))
    assert result.exit_code == 0, result.output
    assert "unparsed: 4 line(s) are not nginx" in result.output
    page = parsed(target.read_text())
    check_totals(page, expected)
    (summary,) = page.having("data-unparsed")
    assert summary["data-unparsed"] == "4"


def alb_line(second: int, seconds: float, status: int, path: str) -> str:
    return (
        f"https 2026-11-23T10:00:{second:02d}.000000Z app/my-lb/50dc 192.0.2.{second}:2817 "
        f"10.0.0.1:80 0.000 {seconds:.3f} 0.000 {status} {status} 34 366 "
        f'"GET https://www.example.com:443{path} HTTP/1.1" "curl/8.5.0" ECDHE TLSv1.2 '
        'arn:aws:elasticloadbalancing:tg "Root=1-58337262" "www.example.com" "-" 0\n'
    )


def test_an_alb_report_has_slowest_requests_but_no_referrers(
    log_root: Path, tmp_path: Path
) -> None:
    lines = [alb_line(i, (i * 7 % 30) / 10, 200 if i % 5 else 502, f"/p{i % 3}") for i in range(30)]
    (log_root / "alb.log").write_text("".join(lines))
    target = tmp_path / "alb.html"
    result = dutydesk("report", str(log_root), "--html", str(target), "--top", "3")
    assert result.exit_code == 0, result.output
    page = parsed(target.read_text())
    (summary,) = page.having("data-format")
    assert (summary["data-format"], summary["data-requests"]) == ("alb", "30")
    assert [attrs["data-missing"] for attrs in page.having("data-missing")] == ["referrers"]
    slowest = [float(attrs["data-seconds"] or 0) for attrs in page.having("data-seconds")]
    assert slowest == [2.9, 2.8, 2.7]
    codes = {attrs["data-status"]: attrs["data-count"] for attrs in page.having("data-status")}
    assert codes == {"200": "24", "502": "6"}
