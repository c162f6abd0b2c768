from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.conftest import make_user, sign_in


def test_signed_in_viewer_sees_the_overview(client: TestClient, db: Session) -> None:
    user = make_user(db, "viewer")
    sign_in(client, db, user)
    page = client.get("/")
    assert page.status_code == 200
    assert "Overview" in page.text
