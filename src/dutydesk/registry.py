"""Extension points the domains register into: job kinds, due work, demo seeders, navigation,
and what the ticket page offers of other domains.

Each domain registers at import time of its `jobs.py` or `routes.py`; `load_domains()` imports
them all so the web app, the worker and beat see the same registrations.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

JobFunction = Callable[[Session, dict[str, Any]], Any]
DueWork = Callable[[Session], None]
DemoSeeder = Callable[[Session, "DemoContext"], None]
# What a domain adds to the ticket page's context (its form's choices), given the ticket.
TicketPageContext = Callable[[Session, Any], dict[str, Any]]

# Domains in the order their demo seeders run and their navigation entries appear. A dotted
# name is a domain inside another (`runbooks.redrive` is the package `runbooks/redrive/`).
DOMAINS = (
    "people",
    "jobs",
    "audit",
    "records",
    "metrics",
    "export",
    "tickets",
    "duty",
    "notify",
    "intake",
    "alarms",
    "logs",
    "backups",
    "runbooks",
    "runbooks.redrive",
    "runbooks.dbchange",
    "runbooks.releases",
    "diagnose",
    "review",
)


@dataclass(frozen=True)
class NavItem:
    """One entry of the console's navigation."""

    label: str
    path: str
    min_role: str = "viewer"
    order: int = 100


@dataclass
class DemoContext:
    """What demo seeders share: the demo password and a log of what they made."""

    password: str
    made: list[str]

    def note(self, line: str) -> None:
        """Record one thing a seeder created, for the start-up summary."""
        self.made.append(line)


job_kinds: dict[str, JobFunction] = {}
due_work: dict[str, DueWork] = {}
demo_seeders: dict[str, DemoSeeder] = {}
nav_items: list[NavItem] = []
# The console page a notice about something other than a ticket links to, by the prefix of its
# delivery subject: ("change", "/changes/{}") links a notice of subject "change:7" to /changes/7.
subject_pages: dict[str, str] = {}
# The ticket page's extra context, by domain: the Diagnose form gets the services to offer.
ticket_page_context: dict[str, TicketPageContext] = {}


def job_kind(name: str) -> Callable[[JobFunction], JobFunction]:
    """Register a job function under `name`; it must be idempotent (it may run twice)."""

    def register(function: JobFunction) -> JobFunction:
        job_kinds[name] = function
        return function

    return register


def due(name: str) -> Callable[[DueWork], DueWork]:
    """Register a function the beat tick calls to enqueue whatever is due."""

    def register(function: DueWork) -> DueWork:
        due_work[name] = function
        return function

    return register


def demo_seeder(name: str) -> Callable[[DemoSeeder], DemoSeeder]:
    """Register a domain's demo seeder; it must not duplicate anything when run twice."""

    def register(function: DemoSeeder) -> DemoSeeder:
        demo_seeders[name] = function
        return function

    return register


def add_nav(item: NavItem) -> None:
    """Add a navigation entry once."""
    if all(existing.path != item.path for existing in nav_items):
        nav_items.append(item)
        nav_items.sort(key=lambda entry: entry.order)


def subject_page(prefix: str, path: str) -> None:
    """Link notices whose subject is `prefix:<id>` to `path` with the id in place of {}."""
    subject_pages[prefix] = path


def ticket_page(name: str) -> Callable[[TicketPageContext], TicketPageContext]:
    """Register what domain `name` adds to the ticket page's context."""

    def register(function: TicketPageContext) -> TicketPageContext:
        ticket_page_context[name] = function
        return function

    return register


def seeders_in_order() -> list[tuple[str, DemoSeeder]]:
    """The demo seeders in the order of DOMAINS (a seeder may use what earlier ones made),
    whatever order their modules happened to be imported in; others (extra modules) last."""
    rank = {domain: index for index, domain in enumerate(DOMAINS)}
    return sorted(demo_seeders.items(), key=lambda item: rank.get(item[0], len(DOMAINS)))


# One thread at a time imports the domains: a process's heartbeat thread may ask for a session
# while its main thread is still loading them, and two threads importing the same circle of
# modules (a package whose __init__ imports its own service) deadlock or see it half made.
_loading = threading.RLock()


def load_domains() -> None:
    """Import every domain's models and registrations, then the operator's extra modules."""
    with _loading:
        _load_domains()


def _load_domains() -> None:
    from dutydesk.settings import get_settings

    for domain in DOMAINS:
        for module in ("models", "service", "jobs", "demo"):
            try:
                importlib.import_module(f"dutydesk.{domain}.{module}")
            except ModuleNotFoundError as error:
                if error.name != f"dutydesk.{domain}.{module}":
                    raise
    for name in get_settings().extra_modules.split(","):
        if name.strip():
            importlib.import_module(name.strip())
