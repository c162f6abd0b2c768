"""`dutydesk logs tail`: real files, a rotation by rename and a new file, no duplicates."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk.intake.models import LogCount
from dutydesk.logs._tail import Shipper
from dutydesk.people import service as people


def lines(start: int, count: int) -> str:
    at = dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC)
    return "".join(
        f"{at + dt.timedelta(seconds=n):%Y-%m-%d %H:%M:%S},000 ERROR [main] org.example.App - "
        f"failure number {n}\n"
        for n in range(start, start + count)
    )


def counted(db: Session) -> int:
    db.expire_all()
    return int(db.scalar(select(func.coalesce(func.sum(LogCount.count), 0))) or 0)


def test_tail_follows_a_rotation_and_resumes_without_duplicates(
    client: TestClient, db: Session, tmp_path: Path
) -> None:
    secret = people.create_token(db, "shipper", ["intake"]).secret
    db.commit()
    log = tmp_path / "app.log"
    state = tmp_path / "state.json"
    log.write_text(lines(0, 10) + "2026-11-24 10:00:59,000 ERROR [main] org.ex")  # half a line
    shipper = Shipper(client, "app", secret, state, "java")
    assert shipper.ship_once([log]) == 10
    assert counted(db) == 10

    # The half line is finished, more lines come, then the file is rotated by rename and a
    # new file is started; a new shipper (a restart) resumes from the state file.
    with log.open("a") as handle:
        handle.write("ample.App - finished late\n" + lines(11, 4))
    log.rename(tmp_path / "app.log.1")
    log.write_text(lines(100, 7))
    restarted = Shipper(client, "app", secret, state, "java")
    assert restarted.ship_once([log]) == 5 + 7
    assert counted(db) == 10 + 5 + 7

    assert restarted.ship_once([log]) == 0  # nothing new: nothing sent again
    with log.open("a") as handle:
        handle.write(lines(200, 3))
    assert Shipper(client, "app", secret, state, "java").ship_once([log]) == 3
    assert counted(db) == 25


def test_tail_starts_over_when_a_file_is_truncated(
    client: TestClient, db: Session, tmp_path: Path
) -> None:
    secret = people.create_token(db, "shipper", ["intake"]).secret
    db.commit()
    log = tmp_path / "app.log"
    log.write_text(lines(0, 20))
    shipper = Shipper(client, "app", secret, tmp_path / "state.json", "java")
    assert shipper.ship_once([log]) == 20
    log.write_text(lines(50, 2))  # copytruncate: same inode, shorter
    assert shipper.ship_once([log]) == 2


def test_logs_tail_command_ships_to_a_real_desk(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from dutydesk.cli import app
    from tests.intake.desk_server import serving_desk

    log = tmp_path / "worker.log"
    log.write_text(lines(0, 6))
    with serving_desk(tmp_path) as (base, factory):
        with factory() as session:
            secret = people.create_token(session, "shipper", ["intake"]).secret
            session.commit()
        args = ["logs", "tail", str(log), "--source", "worker", "--token", secret]
        args += ["--url", base, "--state", str(tmp_path / "tail.json"), "--once"]
        first = CliRunner().invoke(app, args)
        assert first.exit_code == 0, first.output
        again = CliRunner().invoke(app, args)
        assert again.exit_code == 0
        with factory() as session:
            assert counted(session) == 6
        with log.open("a") as handle:
            handle.write(lines(6, 1))
        wrong = CliRunner().invoke(app, [*args[:5], "--token", "nope", *args[7:]])
        assert wrong.exit_code != 0 and "401" in wrong.output
