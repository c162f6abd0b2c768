"""Services to diagnose: made from a YAML or JSON description, their database passwords kept
encrypted apart from the rest, and the diagnoses run on them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dutydesk.diagnose._service_models import DiagnoseService, Diagnosis
from dutydesk.diagnose.service import DiagnoseError
from dutydesk.idents import as_id
from dutydesk.runbooks.dbchange._crypto import decrypt_password, encrypt_password
from dutydesk.runbooks.dbchange._targets import Login, clean_url

__all__ = [
    "DEFAULT_CHECKLIST",
    "DiagnoseService",
    "Diagnosis",
    "create_service",
    "database_logins",
    "delete_service",
    "description_of",
    "get_service",
    "list_services",
    "parse_description",
    "update_service",
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


def _validated(
    description: dict[str, Any], kept_passwords: dict[str, str] | None = None
) -> tuple[str, dict[str, Any], dict[str, str]]:
    """The name, config and encrypted database passwords of a description; DiagnoseError names
    the key that is wrong. A database URL without a password keeps the one in `kept_passwords`
    (encrypted, by database name): an edit need not type it again."""
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
    given = description.get("databases") or []
    if not isinstance(given, list):
        raise DiagnoseError("databases must be a list of {name, url}")
    for item in given:
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise DiagnoseError("each database needs a name and a url")
        db_name = str(item.get("name") or "").strip() or f"db{len(databases) + 1}"
        if db_name in passwords:
            raise DiagnoseError(f"databases: the name {db_name} is given twice")
        try:
            bare, user, password = clean_url(item["url"])
        except ValueError as error:
            raise DiagnoseError(f"database {db_name}: {error}") from None
        if not bare.startswith("postgresql"):
            raise DiagnoseError(f"database {db_name}: only PostgreSQL URLs are checked")
        databases.append({"name": db_name, "url": bare, "user": user})
        kept = (kept_passwords or {}).get(db_name)
        passwords[db_name] = encrypt_password(password) if password or not kept else kept
    config["databases"] = databases
    supervisors = []
    given = description.get("supervisors") or []
    if not isinstance(given, list):
        raise DiagnoseError("supervisors must be a list of {server, processes}")
    for item in given:
        if not isinstance(item, dict) or not isinstance(item.get("server"), str):
            raise DiagnoseError("each supervisors entry needs a server (name) and processes")
        processes = _strings(item.get("processes"), "supervisors.processes")
        supervisors.append({"server": item["server"], "processes": processes})
    config["supervisors"] = supervisors
    return name, config, passwords


def _name_is_free(session: Session, name: str, service_id: int | None = None) -> None:
    taken = select(DiagnoseService.id).where(DiagnoseService.name == name)
    if service_id is not None:
        taken = taken.where(DiagnoseService.id != service_id)
    if session.scalar(taken) is not None:
        raise DiagnoseError(f"a service named {name} exists already")


def create_service(session: Session, description: dict[str, Any], *, actor: str) -> DiagnoseService:
    """Make a service from its description: name, hosts (series label values), databases
    (name and PostgreSQL URL), log_sources, projects, pipelines, supervisors (server and
    processes) and checklist (line names; the default checklist when left out)."""
    name, config, passwords = _validated(description)
    _name_is_free(session, name)
    service = DiagnoseService(name=name, config=config, db_passwords=passwords, created_by=actor)
    try:
        # Added inside the savepoint, so a clash with a concurrent add leaves nothing behind.
        with session.begin_nested():
            session.add(service)
    except IntegrityError:
        raise DiagnoseError(f"a service named {name} exists already") from None
    return service


def update_service(
    session: Session, service: DiagnoseService, description: dict[str, Any]
) -> DiagnoseService:
    """Replace a service's description (its name too); a database given without a password
    keeps the one stored for its name."""
    name, config, passwords = _validated(description, dict(service.db_passwords))
    _name_is_free(session, name, service.id)
    service.name, service.config, service.db_passwords = name, config, passwords
    session.flush()
    return service


def delete_service(session: Session, service: DiagnoseService) -> None:
    """Remove a service and its diagnoses (notes they left on tickets stay)."""
    session.execute(delete(Diagnosis).where(Diagnosis.service_id == service.id))
    session.delete(service)
    session.flush()


def description_of(service: DiagnoseService) -> dict[str, Any]:
    """The service as a description `create_service` reads, database URLs with their user
    and without their password."""
    from sqlalchemy.engine import make_url

    config = service.config
    databases = []
    for item in config.get("databases", []):
        url = make_url(item["url"])
        if item.get("user"):
            url = url.set(username=item["user"])
        databases.append({"name": item["name"], "url": url.render_as_string(hide_password=True)})
    return {
        "name": service.name,
        **{key: list(config.get(key, [])) for key in _LISTS},
        "databases": databases,
        "supervisors": [dict(item) for item in config.get("supervisors", [])],
        "checklist": list(config.get("checklist", DEFAULT_CHECKLIST)),
    }


def get_service(session: Session, key: str) -> DiagnoseService:
    """A service by name or id."""
    query = select(DiagnoseService)
    number = as_id(key)
    query = query.where(
        DiagnoseService.id == number if number is not None else DiagnoseService.name == key
    )
    found = session.scalar(query)
    if found is None:
        raise DiagnoseError(f"no service {key!r}")
    return found


def list_services(session: Session) -> list[DiagnoseService]:
    """Every service by name."""
    return list(session.scalars(select(DiagnoseService).order_by(DiagnoseService.name)))


# The labels an alert names its service by, most telling first (Alertmanager's and
# the generic webhook's payloads keep them under `labels`).
SERVICE_LABELS = ("service", "app", "application", "job", "container", "instance")


def guess_service(names: list[str], title: str, source: str, payload: Any) -> str | None:
    """The service a ticket is most likely about: the first of `names` found as a whole word
    in the alert's service labels, then its title, then its source; None when none is."""
    labels = payload.get("labels") if isinstance(payload, dict) else None
    texts = [
        str(labels[label])
        for label in SERVICE_LABELS
        if isinstance(labels, dict) and isinstance(labels.get(label), str | int)
    ]
    for text in [*texts, title, source]:
        for name in names:
            if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", text, re.IGNORECASE):
                return name
    return None


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
