"""How events become groups: the SDK's fingerprint, else the exception type plus the top
in-app frames (their code line where the SDK sent it, so a group survives unrelated edits that
move line numbers), else the message. Also what of an event is kept for the pages."""

from __future__ import annotations

import hashlib
from typing import Any

from dutydesk.intake._payload import storable

TOP_FRAMES = 5
MAX_FRAMES = 60
MAX_BREADCRUMBS = 50
DEFAULT_MARK = "{{ default }}"


def text(value: Any, limit: int = 300) -> str:
    """A value as one line of text of at most `limit` characters."""
    if value is None or isinstance(value, dict | list):
        return ""
    return storable(" ".join(str(value).split())[:limit])


def _code(value: Any) -> str:
    """A line of source as sent (its indentation kept), storable and cut to 500 characters."""
    return storable(value[:500]) if isinstance(value, str) else ""


def _frame(frame: dict[str, Any]) -> dict[str, Any]:
    """The parts of a frame the pages show, each of the type it should be."""
    lineno = frame.get("lineno")
    return {
        "filename": text(frame.get("filename")),
        "module": text(frame.get("module")),
        "function": text(frame.get("function")),
        "lineno": lineno if isinstance(lineno, int) and not isinstance(lineno, bool) else None,
        "context_line": _code(frame.get("context_line")),
        "pre_context": [_code(line) for line in _lines(frame.get("pre_context"))],
        "post_context": [_code(line) for line in _lines(frame.get("post_context"))],
        "in_app": frame.get("in_app") is True,
    }


def _lines(value: Any) -> list[Any]:
    return value[-10:] if isinstance(value, list) else []


def exception_values(event: dict[str, Any]) -> list[dict[str, Any]]:
    """The event's exceptions, innermost last (as the protocol orders them)."""
    exception = event.get("exception")
    values = exception.get("values") if isinstance(exception, dict) else exception
    if not isinstance(values, list):
        return []
    return [value for value in values if isinstance(value, dict)]


def frames_of(exception: dict[str, Any]) -> list[dict[str, Any]]:
    """An exception's stack frames, oldest first (the protocol's order)."""
    stacktrace = exception.get("stacktrace")
    frames = stacktrace.get("frames") if isinstance(stacktrace, dict) else None
    if not isinstance(frames, list):
        return []
    return [frame for frame in frames if isinstance(frame, dict)]


def message_of(event: dict[str, Any]) -> str:
    """The event's log message, if it has one."""
    entry = event.get("logentry") or event.get("message")
    if isinstance(entry, dict):
        return text(entry.get("formatted") or entry.get("message"), 1000)
    return text(entry, 1000)


def app_frames(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The application's own frames: those marked in-app; else those not marked as library
    code (SDKs leave `in_app` out where they cannot tell); else all of them."""
    marked = [frame for frame in frames if frame.get("in_app") is True]
    return marked or [frame for frame in frames if frame.get("in_app") is not False] or frames


def _frame_key(frame: dict[str, Any]) -> str:
    where = text(frame.get("module") or frame.get("filename") or frame.get("abs_path"))
    line = text(frame.get("context_line")) or text(frame.get("lineno"))
    return f"{where}:{text(frame.get('function'))}:{line}"


def default_parts(event: dict[str, Any]) -> list[str]:
    """The default grouping: the main exception's type and its top in-app frames."""
    values = exception_values(event)
    if values:
        main = values[-1]
        frames = frames_of(main)
        in_app = app_frames(frames)
        return [text(main.get("type")) or "Error", *map(_frame_key, in_app[-TOP_FRAMES:])]
    return ["message", message_of(event) or text(event.get("transaction")) or "(no message)"]


def fingerprint_of(event: dict[str, Any]) -> str:
    """The group key of an event: a hash of the SDK's fingerprint (where it says
    `{{ default }}`, the default grouping goes) or of the default grouping."""
    given = event.get("fingerprint")
    parts: list[str]
    if isinstance(given, list) and given and all(isinstance(p, str | int) for p in given):
        parts = []
        for part in given:
            parts.extend(default_parts(event) if part == DEFAULT_MARK else [str(part)])
    else:
        parts = default_parts(event)
    return hashlib.sha256("\n".join(parts).encode("utf-8", "replace")).hexdigest()


def title_of(event: dict[str, Any]) -> str:
    """`Type: value` of the main exception, else the message."""
    values = exception_values(event)
    if values:
        main = values[-1]
        kind = text(main.get("type")) or "Error"
        value = text(main.get("value"))
        return f"{kind}: {value}"[:300] if value else kind
    return message_of(event)[:300] or "(no message)"


def culprit_of(event: dict[str, Any]) -> str:
    """Where it happened: the innermost in-app frame's module and function."""
    values = exception_values(event)
    frames = frames_of(values[-1]) if values else []
    in_app = app_frames(frames)
    if not in_app:
        return text(event.get("culprit") or event.get("transaction"))
    top = in_app[-1]
    where = text(top.get("module") or top.get("filename"), 200)
    return f"{where} in {text(top.get('function'), 90)}"


def tags_of(event: dict[str, Any]) -> dict[str, str]:
    """The event's tags (a mapping or a list of pairs), as text."""
    tags = event.get("tags")
    pairs: list[Any] = list(tags.items()) if isinstance(tags, dict) else tags or []
    kept: dict[str, str] = {}
    if not isinstance(pairs, list):
        return kept
    for pair in pairs[:100]:
        if isinstance(pair, list | tuple) and len(pair) == 2:
            kept[text(pair[0], 100)] = text(pair[1], 200)
    return kept


def kept_data(event: dict[str, Any]) -> dict[str, Any]:
    """What the pages show of an event: exceptions with frames, breadcrumbs, tags, context."""
    exceptions = [
        {
            "type": text(value.get("type"), 200),
            "value": text(value.get("value"), 2000),
            "module": text(value.get("module"), 200),
            "frames": [_frame(frame) for frame in frames_of(value)[-MAX_FRAMES:]],
        }
        for value in exception_values(event)[-10:]
    ]
    crumbs = event.get("breadcrumbs")
    crumbs = crumbs.get("values") if isinstance(crumbs, dict) else crumbs
    breadcrumbs = [
        {
            "timestamp": text(crumb.get("timestamp"), 40),
            "category": text(crumb.get("category"), 100),
            "level": text(crumb.get("level"), 20),
            "message": text(crumb.get("message"), 500),
        }
        for crumb in (crumbs if isinstance(crumbs, list) else [])[-MAX_BREADCRUMBS:]
        if isinstance(crumb, dict)
    ]
    given = event.get("sdk")
    sdk: dict[str, Any] = given if isinstance(given, dict) else {}
    return {
        "exceptions": exceptions,
        "breadcrumbs": breadcrumbs,
        "tags": tags_of(event),
        "platform": text(event.get("platform"), 40),
        "level": text(event.get("level"), 16),
        "server_name": text(event.get("server_name"), 200),
        "transaction": text(event.get("transaction"), 200),
        "sdk": f"{text(sdk.get('name'), 80)} {text(sdk.get('version'), 40)}".strip(),
    }
