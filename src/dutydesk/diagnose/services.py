"""Services to diagnose: made from a YAML or JSON description, their database passwords kept
encrypted apart from the rest, and the diagnoses run on them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dutydesk.diagnose._service_models import DiagnoseService, Diagnosis
from dutydesk.diagnose.service import DiagnoseError
from dutydesk.runbooks.dbchange._crypto import decrypt_password, encrypt_password
from dutydesk.runbooks.dbchange._targets import Login, clean_url

__all__ = [
    "DEFAULT_CHECKLIST",
    "DiagnoseService",
    "Diagnosis",
    "create_service",
    "database_logins",
    "get_service",
    "list_services",
    "parse_description",
]

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")

# The team's debug checklist, in its order; a service may list fewer lines or reorder them.
DEFAULT_CHECKLIST = (
    "alarms",
    "host_load",
    "database",
    "responses",
    "logs",
    "exceptions",
    "instances",
    "changes",
    "ci",
)

_LISTS = ("hosts", "log_sources", "projects", "pipelines")


@dataclass(frozen=True)
class DatabaseLogin:
    """One database of a service, with its login in memory only."""

    name: str
    login: Login


def _strings(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise DiagnoseError(f"{key} must be a list of strings")
    return [item.strip() for item in value if item.strip()]


def parse_description(text: str) -> dict[str, Any]:
    """A service description read from YAML or JSON text (JSON is YAML); DiagnoseError names
    what is wrong."""
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DiagnoseError(f"the description is not YAML or JSON: {error}") from None
    if not isinstance(data, dict):
        raise DiagnoseError("the description must be a mapping of keys such as name, databases")
    return data


def create_service(session: Session, description: dict[str, Any], *, actor: str) -> DiagnoseService:
    """Make a service from its description: name, hosts (series label values), databases
    (name and PostgreSQL URL), log_sources, projects, pipelines, supervisors (server and
    processes) and checklist (line names; the default checklist when left out)."""
    name = str(description.get("name", "")).strip()
    if not NAME.match(name):
        raise DiagnoseError("name must be lowercase letters, digits, . _ - (up to 100)")
    unknown = set(description) - {"name", "databases", "supervisors", "checklist", *_LISTS}
    if unknown:
        raise DiagnoseError(f"unknown keys: {', '.join(sorted(map(str, unknown)))}")
    config: dict[str, Any] = {key: _strings(description.get(key), key) for key in _LISTS}
    checklist = _strings(description.get("checklist"), "checklist") or list(DEFAULT_CHECKLIST)
    wrong = [line for line in checklist if line not in DEFAULT_CHECKLIST]
    if wrong:
        raise DiagnoseError(
            f"unknown checklist lines: {', '.join(wrong)} (known: {', '.join(DEFAULT_CHECKLIST)})"
        )
    config["checklist"] = checklist
    databases: list[dict[str, str]] = []
    passwords: dict[str, str] = {}
    for item in description.get("databases") or []:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise DiagnoseError("each database needs a name and a url")
        db_name = str(item.get("name") or "").strip() or f"db{len(databases) + 1}"
        try:
            bare, user, password = clean_url(item["url"])
        except ValueError as error:
            raise DiagnoseError(f"database {db_name}: {error}") from None
        if not bare.startswith("postgresql"):
            raise DiagnoseError(f"database {db_name}: only PostgreSQL URLs are checked")
        databases.append({"name": db_name, "url": bare, "user": user})
        passwords[db_name] = encrypt_password(password)
    config["databases"] = databases
    supervisors = []
    for item in description.get("supervisors") or []:
        if not isinstance(item, dict) or not isinstance(item.get("server"), str):
            raise DiagnoseError("each supervisors entry needs a server (name) and processes")
        processes = _strings(item.get("processes"), "supervisors.processes")
        supervisors.append({"server": item["server"], "processes": processes})
    config["supervisors"] = supervisors
    service = DiagnoseService(name=name, config=config, db_passwords=passwords, created_by=actor)
    session.add(service)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise DiagnoseError(f"a service named {name} exists already") from None
    return service


def get_service(session: Session, key: str) -> DiagnoseService:
    """A service by name or id."""
    query = select(DiagnoseService)
    query = query.where(
        DiagnoseService.id == int(key) if key.isdigit() else DiagnoseService.name == key
    )
    found = session.scalar(query)
    if found is None:
        raise DiagnoseError(f"no service {key!r}")
    return found


def list_services(session: Session) -> list[DiagnoseService]:
    """Every service by name."""
    return list(session.scalars(select(DiagnoseService).order_by(DiagnoseService.name)))


def database_logins(service: DiagnoseService) -> list[DatabaseLogin]:
    """The service's databases with their logins (passwords decrypted, in memory only)."""
    from sqlalchemy.engine import make_url

    found = []
    for item in service.config.get("databases", []):
        url = make_url(item["url"])
        if item.get("user"):
            url = url.set(username=item["user"])
        password = decrypt_password(service.db_passwords.get(item["name"], ""))
        found.append(DatabaseLogin(item["name"], Login(url=url, password=password)))
    return found


def last_diagnosis(session: Session, service: DiagnoseService) -> Diagnosis | None:
    """The service's newest diagnosis."""
    return session.scalar(
        select(Diagnosis)
        .where(Diagnosis.service_id == service.id)
        .order_by(Diagnosis.id.desc())
        .limit(1)
    )
