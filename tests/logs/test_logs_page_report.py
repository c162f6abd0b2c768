"""The Logs page's report says what `dutydesk logs query` says on stderr: each format with its
files (and every file's format, like `--file-formats`), unreadable and skipped files with the
reason, unparsed lines per file with a sample, log text escaped."""

from __future__ import annotations

import gzip
import random
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from markupsafe import escape
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from dutydesk.logs import _queryreport
from tests.conftest import make_user, sign_in
from tests.logs.conftest import access_line

SCRIPT = "<script>alert('log')</script>"


def alb_line(rng: random.Random) -> str:
    """One ALB access line (the fields AWS appends included)."""
    status = rng.choice([200, 301, 404, 503])
    return (
        f"https 2026-11-23T10:{rng.randrange(60):02d}:{rng.randrange(60):02d}.000001Z "
        f"app/my-lb/50dc6c495c0c9188 192.0.2.{rng.randrange(256)}:4242 10.0.0.1:80 "
        f"0.001 0.002 0.000 {status} {status} 120 {rng.randrange(9000)} "
        '"GET https://www.example.com:443/p HTTP/1.1" "curl/8.5.0" '
        "ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 "
        "arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/t/73e2d6bc24d8a067 "
        '"Root=1-58337262-0000abcd" "www.example.com" "-" 0 '
        '2026-11-23T10:00:00.364000Z "forward" "-" "-" "10.0.0.1:80" "200" "-" "-"\n'
    )


def log4j_lines(count: int) -> str:
    return "".join(
        f"04:00:{i % 60:02d}.123 [main] INFO  com.example.Jobs - job {i} done\n"
        for i in range(count)
    )


@pytest.fixture
def mixed(log_root: Path) -> Path:
    """nginx (one file with a TLS hello and a script tag in a path, one gzipped, one whose name
    holds markup, one with a script tag for a line), ALB, log4j, and a file no format reads."""
    rng = random.Random(31)
    folder = log_root / "mixed"
    folder.mkdir()
    access = [access_line(rng) for _ in range(30)]
    access.insert(5, "\x16\x03\x01 a TLS hello sent to a plain port\n")
    access[9] = access[9].replace("GET /", f"GET /{SCRIPT}", 1)  # a parsed path
    (folder / "a-access.log").write_text("".join(access))
    scripted = [access_line(rng) for _ in range(8)]
    scripted.insert(3, SCRIPT + "\n")  # an unparsed line, shown as the file's sample
    (folder / "h-script.log").write_text("".join(scripted))
    (folder / "b-alb.log").write_text("".join(alb_line(rng) for _ in range(25)))
    (folder / "c-app.log").write_text(log4j_lines(20))
    (folder / "d-garbage.txt").write_text("".join(f"zz {i:x} qq\n" for i in range(30)))
    with gzip.open(folder / "e-access.log.gz", "wt") as handle:
        handle.writelines(access_line(rng) for _ in range(20))
    (folder / "f-<b>markup.log").write_text("".join(access_line(rng) for _ in range(5)))
    return folder


def run_page(client: TestClient, db: Session, root: Path, pattern: str, **fields: str) -> str:
    sign_in(client, db, make_user(db, "viewer"))
    params = {"root": str(root), "pattern": pattern, "format": "auto", "run": "1", **fields}
    page = client.get("/logs", params=params)
    assert page.status_code == 200, page.text
    return str(page.text)


def section(page: str, element_id: str) -> str:
    """The text of the element with `element_id` (up to its closing tag)."""
    match = re.search(rf'<(\w+) id="{element_id}"[^>]*>(.*?)</\1>', page, re.S)
    assert match, f"no #{element_id} on the page"
    return match.group(2)


def test_a_mixed_folder_shows_each_format_skipped_unreadable_and_unparsed_files(
    client: TestClient, db: Session, mixed: Path, log_root: Path
) -> None:
    page = run_page(client, db, log_root, "mixed", group_by="status")
    path = {name.name: str(escape(str(name))) for name in mixed.iterdir()}

    formats = section(page, "report-formats")
    assert (
        f"format <strong>nginx</strong>: 4 file(s): <code>{path['a-access.log']}</code>, "
        f"<code>{path['e-access.log.gz']}</code>, <code>{path['f-<b>markup.log']}</code>"
        " and 1 more"
    ) in formats
    assert f"format <strong>alb</strong>: 1 file(s): <code>{path['b-alb.log']}</code>" in formats

    every = section(page, "report-file-formats")
    listed = re.findall(r"<tr><td><code>(.*?)</code></td><td>(.*?)</td></tr>", every)
    assert sorted(listed) == sorted(
        [
            (path["a-access.log"], "nginx"),
            (path["e-access.log.gz"], "nginx"),
            (path["f-<b>markup.log"], "nginx"),
            (path["h-script.log"], "nginx"),
            (path["b-alb.log"], "alb"),
        ]
    )
    assert "Every file and its format (5)" in every and "more" not in every

    unreadable = section(page, "report-unreadable")
    assert f"<code>{path['d-garbage.txt']}</code>: cannot tell its format" in unreadable

    skipped = section(page, "report-skipped")
    assert f"<code>{path['c-app.log']}</code>: --group-by status: no such field" in skipped

    unparsed = section(page, "report-unparsed")
    rows = re.findall(
        r"<tr><td><code>(.*?)</code></td><td>(\w+)</td><td class=\"num\">(\d+)", unparsed
    )
    assert rows == [(path["a-access.log"], "nginx", "1"), (path["h-script.log"], "nginx", "1")]
    assert "2 line(s) in 2 file(s)." in page
    # The one format summary of the old page ("nginx, alb") is gone.
    assert "nginx, alb" not in page


def test_log_text_and_file_names_are_escaped_on_the_page(
    client: TestClient, db: Session, mixed: Path, log_root: Path
) -> None:
    page = run_page(client, db, log_root, "mixed")
    assert SCRIPT not in page and "<b>markup.log" not in page
    assert escape(SCRIPT) in section(page, "report-unparsed")  # the sample of h-script.log
    assert f'<td title="/{escape(SCRIPT)}' in page  # a path in the rows
    assert "f-&lt;b&gt;markup.log" in page
    # A control character is written out, as the CLI's sample shows it.
    assert "\x16" not in page and r"\x16\x03\x01 a TLS hello" in page


def test_every_file_list_is_cut_with_the_number_left_out(
    client: TestClient,
    db: Session,
    mixed: Path,
    log_root: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_queryreport, "FILES_LISTED", 2)
    monkeypatch.setattr(_queryreport, "ITEMS_LISTED", 1)
    (mixed / "g-more-garbage.txt").write_text("".join(f"qq {i} zz\n" for i in range(30)))
    page = run_page(client, db, log_root, "mixed")
    every = section(page, "report-file-formats")
    assert len(re.findall(r"<tr><td>", every)) == 2
    assert "Every file and its format (6)" in every
    assert "and 4 more (<code>--file-formats</code> lists every one)" in every
    unreadable = section(page, "report-unreadable")
    assert unreadable.count("cannot tell its format") == 1 and "and 1 more" in unreadable


def test_a_clean_mixed_folder_says_every_line_parsed_each_in_its_own_format(
    client: TestClient, db: Session, log_root: Path
) -> None:
    rng = random.Random(4)
    (log_root / "a.log").write_text("".join(access_line(rng) for _ in range(10)))
    (log_root / "b.log").write_text("".join(alb_line(rng) for _ in range(10)))
    page = run_page(client, db, log_root, "*.log", group_by="status")
    assert "Every line of the 2 file(s) read parsed, each file in its own format" in page
    assert "format <strong>nginx</strong>: 1 file(s)" in page
    assert "format <strong>alb</strong>: 1 file(s)" in page
    assert 'id="report-unparsed"' not in page and 'id="report-skipped"' not in page


def test_one_format_reads_as_before(client: TestClient, db: Session, log_root: Path) -> None:
    rng = random.Random(8)
    lines = [access_line(rng) for _ in range(10)]
    (log_root / "a.log").write_text("".join([*lines, "not an access line\n"]))
    page = run_page(client, db, log_root, "a.log", format="nginx")
    assert "Lines that do not parse as nginx" in page and "not an access line" in page
    assert 'id="report-formats"' not in page  # a format given: no per-file formats to tell


def test_the_logs_page_links_the_access_report(
    client: TestClient, db: Session, log_root: Path
) -> None:
    sign_in(client, db, make_user(db, "viewer"))
    page = client.get("/logs")
    assert page.status_code == 200
    assert 'action="/logs/report"' in page.text and 'href="/logs/report"' in page.text
    assert client.get("/logs/report").status_code == 200


def test_logs_help_lists_every_command_with_a_one_line_description() -> None:
    import typer.main
    from typer.core import TyperGroup

    from dutydesk.logs.cli import app

    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    names = sorted(group.commands)
    assert {"query", "report", "extracts", "tail", "cache"} <= set(names)
    out = CliRunner().invoke(app, ["--help"], terminal_width=80).output
    commands = out.split("Commands:")[1].splitlines()
    described = {
        line.split()[0]: line.split(None, 1)[1] for line in commands if len(line.split()) > 1
    }
    assert sorted(described) == names
    for name in names:
        assert described[name] and not described[name].endswith("..."), (name, described[name])
