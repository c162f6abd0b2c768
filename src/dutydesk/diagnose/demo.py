"""Demo: the export service to diagnose, with an exception project, its worker's log, its CI
pipelines, a host and a database (neither reachable in the demo, so those lines say unknown
and why)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from dutydesk import registry
from dutydesk.diagnose import service, services
from dutydesk.diagnose._service_models import DiagnoseService
from dutydesk.diagnose.models import ExceptionProject
from dutydesk.settings import get_settings

DEMO_SERVICE = "export"
DEMO_PROJECT = "export-worker"


def demo_description() -> dict[str, object]:
    """The demo service's description, as an admin would write it in YAML."""
    return {
        "name": DEMO_SERVICE,
        "hosts": ["export-vm1"],
        "databases": [{"name": "export", "url": "postgresql://127.0.0.1:5432/export_demo"}],
        "log_sources": [str(get_settings().home_path / "logs" / "export-worker" / "*.log*")],
        "projects": [DEMO_PROJECT],
        "pipelines": ["exporter-ci", "jenkins"],
        "supervisors": [{"server": "export-primary", "processes": ["export:worker"]}],
    }


@registry.demo_seeder("diagnose")
def seed_diagnose(session: Session, context: registry.DemoContext) -> None:
    """The exception project and the service, each once."""
    if (
        session.scalar(select(ExceptionProject.id).where(ExceptionProject.name == DEMO_PROJECT))
        is None
    ):
        service.create_project(session, name=DEMO_PROJECT, actor="demo")
    if session.scalar(select(DiagnoseService.id).where(DiagnoseService.name == DEMO_SERVICE)):
        return
    services.create_service(session, demo_description(), actor="demo")
    context.note(f"service {DEMO_SERVICE} to diagnose (dutydesk diagnose run {DEMO_SERVICE})")
