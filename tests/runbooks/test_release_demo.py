"""The releases demo: the team's deploy template, a release window and one past release,
seeded once."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.people.demo import seed_people
from dutydesk.runbooks.releases import service
from dutydesk.runbooks.releases.demo import seed_releases
from dutydesk.runbooks.releases.models import Release


def test_demo_seeds_the_deploy_template_and_one_past_release_once(db: Session) -> None:
    context = registry.DemoContext(password="demo-password-1", made=[])
    seed_people(db, context)
    seed_releases(db, context)
    template = service.get_template(db, "deploy")
    names = [step.name for step in template.steps]
    assert names[:4] == [
        "Agree a time with core users",
        "Change-control form",
        "Notify users by e-mail",
        "Broadcast in the application",
    ]
    kinds = {step.kind for step in template.steps}
    assert {"manual", "notify", "broadcast", "backup", "http_check", "signoff"} <= kinds
    assert [s.name for s in template.steps if s.skip_for_patch] == names[:2]
    assert any(step.rollback for step in template.steps)
    (past,) = service.list_releases(db)
    assert past.version == "1.3.0" and past.state == "done"
    assert {step.state for step in past.steps} == {"done", "skipped"}
    assert service.timeline(db, past)[-1].what == "done"
    seed_releases(db, context)
    assert db.scalar(select(func.count()).select_from(Release)) == 1
