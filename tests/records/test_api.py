"""The record-store API as an uploader and a viewer use it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.records.models import Attachment, Record
from tests.conftest import make_user, sign_in
from tests.records.conftest import STUDY, bearer
from tests.records.test_service import GOOD_DATA, record


def test_uploader_posts_a_record_and_gets_its_id(
    records_client: TestClient, db: Session, rdb: Session, study: str
) -> None:
    answer = records_client.post(
        "/api/v1/records", json=record(id="r1"), headers=bearer(db, "upload")
    )
    assert answer.status_code == 201, answer.text
    assert answer.json() == {"id": "r1", "validation_errors": None}
    assert rdb.get(Record, "r1") is not None


def test_wrong_typed_value_is_stored_and_its_problem_answered(
    records_client: TestClient, db: Session, rdb: Session, study: str
) -> None:
    payload = record(data={**GOOD_DATA, "count": "many"})
    answer = records_client.post("/api/v1/records", json=payload, headers=bearer(db, "upload"))
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["validation_errors"] == "field count: expected INT, got string"
    stored = rdb.get(Record, body["id"])
    assert stored is not None and stored.data["count"] == "many"


def test_unknown_study_or_schema_answers_404_naming_it(
    records_client: TestClient, db: Session, study: str
) -> None:
    headers = bearer(db, "upload")
    answer = records_client.post("/api/v1/records", json=record(study_id="zz"), headers=headers)
    assert (answer.status_code, answer.json()) == (404, {"detail": "unknown study 'zz'"})
    answer = records_client.post("/api/v1/records", json=record(schema_id="x"), headers=headers)
    assert answer.status_code == 404
    assert answer.json()["detail"] == "unknown schema 'x' revision 1 in study 'study-x'"


def test_malformed_bodies_answer_422(
    records_client: TestClient, db: Session, rdb: Session, study: str
) -> None:
    headers = {**bearer(db, "upload"), "Content-Type": "application/json"}
    answer = records_client.post("/api/v1/records", content=b"{not json", headers=headers)
    assert answer.status_code == 422
    answer = records_client.post("/api/v1/records", json=record(colour=1), headers=headers)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("unknown keys colour")
    answer = records_client.post("/api/v1/records", json=[1], headers=headers)
    assert answer.status_code == 422
    assert rdb.query(Record).count() == 0


def test_posting_a_stored_id_again_is_refused(
    records_client: TestClient, db: Session, study: str
) -> None:
    headers = bearer(db, "upload")
    assert records_client.post("/api/v1/records", json=record(id="r1"), headers=headers).is_success
    again = records_client.post("/api/v1/records", json=record(id="r1"), headers=headers)
    assert (again.status_code, again.json()["detail"]) == (409, "record 'r1' is already stored")


def test_read_token_may_not_post_and_anonymous_must_sign_in(
    records_client: TestClient, db: Session, study: str
) -> None:
    answer = records_client.post("/api/v1/records", json=record(), headers=bearer(db, "read"))
    assert answer.status_code == 403
    answer = records_client.post(
        "/api/v1/records/attachments", content=b"x", headers=bearer(db, "read")
    )
    assert answer.status_code == 403
    assert records_client.post("/api/v1/records", json=record()).status_code == 401


def test_upload_token_may_not_list_studies(records_client: TestClient, db: Session) -> None:
    answer = records_client.get("/api/v1/records/studies", headers=bearer(db, "upload"))
    assert answer.status_code == 403


def test_attachment_upload_keeps_the_bytes_and_answers_size_and_md5(
    records_client: TestClient, db: Session, rdb: Session
) -> None:
    content = b"RIFF....WAVEfmt audio bytes"
    answer = records_client.post(
        "/api/v1/records/attachments",
        content=content,
        headers={**bearer(db, "upload"), "Content-Type": "audio/wav"},
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["size"] == len(content)
    assert body["md5"] == hashlib.md5(content).hexdigest()
    stored = rdb.get(Attachment, body["id"])
    assert stored is not None
    assert (stored.content, stored.content_type) == (content, "audio/wav")


def test_empty_attachment_is_refused(records_client: TestClient, db: Session) -> None:
    answer = records_client.post(
        "/api/v1/records/attachments", content=b"", headers=bearer(db, "upload")
    )
    assert (answer.status_code, answer.json()["detail"]) == (
        422,
        "an attachment needs content; the body is empty",
    )


def test_viewer_lists_studies_with_record_counts(
    records_client: TestClient, db: Session, study: str
) -> None:
    headers = bearer(db, "upload")
    for number in range(3):
        records_client.post("/api/v1/records", json=record(id=f"r{number}"), headers=headers)
    sign_in(records_client, db, make_user(db, "viewer"))
    answer = records_client.get("/api/v1/records/studies")
    assert answer.status_code == 200, answer.text
    assert answer.json() == [
        {
            "id": STUDY,
            "name": "Study X",
            "project": "syn1",
            "data_access_team": None,
            "configured": True,
            "disable_export": False,
            "uses_custom_export_schedule": False,
            "study_id_excluded_in_export": False,
            "records": 3,
        }
    ]


def test_unmigrated_record_store_answers_503_telling_what_to_run(
    factory: sessionmaker[Session], db: Session, tmp_path: Path
) -> None:
    from dutydesk.db import build_engine
    from dutydesk.records.store import records_session_factory
    from dutydesk.settings import get_settings
    from dutydesk.web.app import create_app

    empty = records_session_factory(build_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}"))
    with TestClient(create_app(get_settings(), factory, records_factory=empty)) as client:
        answer = client.post("/api/v1/records", json=record(), headers=bearer(db, "upload"))
    assert answer.status_code == 503, answer.text
    assert answer.json() == {
        "detail": "the record store is not migrated; run `dutydesk db upgrade`"
    }
