"""How a change reads in a notice: a before/after line per field, secrets never shown.

The audit log already redacts the columns a model lists in `__audit_exclude__`; a notice also
hides any field whose name says it holds a secret, and the password of any URL, so a table
that forgot to exclude one still sends no secret to a mailing list.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from dutydesk.audit.models import AuditEvent
from dutydesk.audit.service import REDACTED

# Parts of a field name that mark a secret (password_hash, token_hash, signing_secret...).
SECRET_NAME_PARTS = ("password", "secret", "hash", "private", "api_key", "credential")
_URL_PASSWORD = re.compile(r"(?P<user>://[^/:@\s]+:)[^@/\s]+@")
VALUE_LIMIT = 200
VERBS = {"create": "created", "update": "changed", "delete": "deleted"}
# Fields that name an object better than its id does.
LABEL_FIELDS = ("username", "name", "key", "title")


@dataclass(frozen=True)
class FieldChange:
    """One field of a change: its value before and after (None: it did not exist), or
    `hidden` (what happened to it: set, changed, deleted) when neither may be shown."""

    field: str
    before: str | None
    after: str | None
    hidden: str = ""

    def line(self) -> str:
        """`field: before → after`, as a notice shows it."""
        if self.hidden:
            return f"{self.field}: {self.hidden} (secret, not shown)"
        if self.before is None:
            return f"{self.field}: {self.after}"
        if self.after is None:  # a deleted object: its last values
            return f"{self.field}: {self.before}"
        return f"{self.field}: {self.before} → {self.after}"


def is_secret_field(name: str) -> bool:
    """Whether a field's name says it holds a secret."""
    lowered = name.lower()
    return any(part in lowered for part in SECRET_NAME_PARTS)


def shown(value: Any) -> str:
    """A value as one short line of text, any URL's password masked."""
    if value is None:
        return "(empty)"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    text = _URL_PASSWORD.sub(rf"\g<user>{REDACTED}@", text)
    return text if len(text) <= VALUE_LIMIT else text[: VALUE_LIMIT - 1] + "…"


def _hidden(name: str, *values: Any) -> bool:
    return is_secret_field(name) or any(value == REDACTED for value in values)


def field_changes(event: AuditEvent) -> list[FieldChange]:
    """The change's fields, before and after, with secrets hidden."""
    changes: list[FieldChange] = []
    if event.action == "delete":
        for name, value in (event.before or {}).items():
            if _hidden(name, value):
                changes.append(FieldChange(name, None, None, hidden="deleted"))
            else:
                changes.append(FieldChange(name, shown(value), None))
        return changes
    for name, pair in (event.diff or {}).items():
        old, new = [*pair, None, None][:2] if isinstance(pair, list) else (None, pair)
        if _hidden(name, old, new):
            what = "set" if event.action == "create" else "changed"
            changes.append(FieldChange(name, None, None, hidden=what))
        elif event.action == "create":
            changes.append(FieldChange(name, None, shown(new)))
        else:
            changes.append(FieldChange(name, shown(old), shown(new)))
    return changes


def label(event: AuditEvent) -> str:
    """What the changed object is called (`users 7 (ana)`)."""
    values = event.after or event.before or {}
    for name in LABEL_FIELDS:
        value = values.get(name)
        if isinstance(value, str) and value and not is_secret_field(name):
            return f"{event.object_type} {event.object_id} ({shown(value)})"
    return f"{event.object_type} {event.object_id}"


def headline(event: AuditEvent) -> str:
    """One line: who did what to which object, and the fields an update touched."""
    verb = VERBS.get(event.action, event.action)
    line = f"{event.actor} {verb} {label(event)}"
    if event.action == "update" and event.diff:
        line += ": " + ", ".join(sorted(event.diff))
    return line


def notice_body(event: AuditEvent, risk: str, link: str) -> str:
    """The text of a change notice: who, when, the before/after of each field, a link."""
    lines = [
        headline(event),
        f"When: {event.at.strftime('%Y-%m-%d %H:%M:%S')} UTC",
        f"Who: {event.actor}",
        f"Risk: {risk}",
        "",
        *(f"  {change.line()}" for change in field_changes(event)),
        "",
        f"All changes: {link}",
    ]
    return "\n".join(lines)


def digest_body(events: list[AuditEvent], day: str, link: str, limit: int) -> str:
    """The text of a daily digest: one block per change, the first `limit` of them."""
    lines = [f"{len(events)} low-risk change(s) recorded up to the end of {day} (UTC).", ""]
    for event in events[:limit]:
        lines.append(f"{event.at.strftime('%Y-%m-%d %H:%M')} UTC  {headline(event)}")
        lines += [f"    {change.line()}" for change in field_changes(event)[:10]]
    if len(events) > limit:
        lines.append(f"... and {len(events) - limit} more.")
    lines += ["", f"All changes: {link}"]
    return "\n".join(lines)
