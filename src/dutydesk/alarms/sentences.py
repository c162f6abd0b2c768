"""Alarm titles and rule explanations as sentences a person reads aloud, numbers in them.

The evaluators in `_kinds` count and decide; the words are made here, one function per rule
kind for its decisions and `explain` for what a rule checks, built from its settings. A
decision's sentence becomes the alarm's (and so the ticket's) title: it is stored once and read
by everyone and in e-mails, so its moments are written in UTC and say so. Fingerprints never
come from these words (see `silences.fingerprint`), so rewording them opens no new tickets.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from dutydesk.alarms._cron import CronError, parse_cron
from dutydesk.alarms.models import AlarmRule, RuleKind
from dutydesk.web.words import plural

WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")

# The export's counters by the names people use for them, and what their label tells apart.
COUNTERS: dict[str, tuple[str, str | None]] = {
    "uniqueHealthCodes": ("Unique participants", "study"),
    "numTotal": ("Records read", None),
    "accepted": ("Accepted records", "sharing scope"),
    "excluded": ("Excluded records", "sharing scope"),
    "lineCount": ("Rows", "table"),
    "errorCount": ("Errors", "table"),
}


# --- numbers, spans and moments ------------------------------------------------------------


def number(value: float) -> str:
    """A count or measure as a person writes it: `1,200`, `4.1`, `0.25`."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def moment(value: dt.datetime) -> str:
    """A moment in a stored sentence: `2026-12-06 02:00 UTC`."""
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return f"{value:%Y-%m-%d %H:%M} UTC"


def span(seconds: float) -> str:
    """A length of time in the largest unit that reads well: `45 seconds`, `12 minutes`,
    `2.5 hours`, `26 hours`, `3 days`."""
    if seconds < 120:
        return plural_of(seconds, "second")
    minutes = seconds / 60
    if minutes < 120:
        return plural_of(minutes, "minute")
    hours = minutes / 60
    if hours < 72:
        return plural_of(hours, "hour")
    return plural_of(hours / 24, "day")


def plural_of(amount: float, unit: str) -> str:
    """`amount` to one decimal (none when it is whole) with its unit: `2.5 hours`, `26
    hours`, `1 hour`."""
    text = number(round(amount, 1))
    return f"{text} {unit}" if text == "1" else f"{text} {unit}s"


def window(minutes: int) -> str:
    """A rule's window as a span: `an hour`, `2 hours`, `30 minutes`, `a day`."""
    return {60: "an hour", 1440: "a day"}.get(minutes) or (
        f"{minutes // 60} hours" if minutes % 60 == 0 else plural(minutes, "minute")
    )


def last_span(minutes: int) -> str:
    """The window a count covers: `hour`, `2 hours`, `30 minutes`, `day`."""
    if minutes == 60:
        return "hour"
    if minutes == 1440:
        return "day"
    if minutes % 60 == 0 and minutes < 1440:
        return f"{minutes // 60} hours"
    return plural(minutes, "minute")


def percent(change: float, relative: float | None) -> str | None:
    """A relative change with its sign: `-50%`, `+12%`; None where there is no base (an ASCII
    minus, so a title is found by what people type)."""
    if relative is None:
        return None
    sign = "-" if change < 0 else "+" if change > 0 else ""
    return f"{sign}{number(round(relative * 100))}%"


def cron_words(expression: str) -> str:
    """A schedule as words where it is a plain one (`every day at 02:00 UTC`, `every Monday
    at 06:30 UTC`, `every hour at :15`); otherwise `on the schedule '...'` (UTC)."""
    try:
        parse_cron(expression)
    except CronError:
        return f"on the schedule {expression!r}"
    fields = expression.split()
    minute, hour, day, month, weekday = fields
    if minute.isdigit() and hour == "*" and day == month == weekday == "*":
        return f"every hour at :{int(minute):02d}"
    if not (minute.isdigit() and hour.isdigit() and day == month == "*"):
        return f"on the schedule '{expression}' (UTC)"
    clock = f"{int(hour):02d}:{int(minute):02d} UTC"
    if weekday == "*":
        return f"every day at {clock}"
    if weekday.isdigit():
        return f"every {WEEKDAYS[int(weekday) % 7]} at {clock}"
    if weekday in ("1-5", "MON-FRI"):
        return f"every weekday at {clock}"
    return f"on the schedule '{expression}' (UTC)"


# --- series ------------------------------------------------------------------------------


def series_words(series: str) -> str:
    """A metric series by the name people use: `Unique participants of study-a` for
    `uniqueHealthCodes[study-a]` or `export.uniqueHealthCodes[study-a]`, `Rows of
    study-a-default` for `study-a-default.lineCount`; a series the desk has no words for is
    named by its key."""
    name, _, rest = series.partition("[")
    keys = rest.removesuffix("]").split(",") if rest.endswith("]") else []
    name = name.removeprefix("export.")
    if name in COUNTERS:
        words = COUNTERS[name][0]
        return f"{words} of {', '.join(keys)}" if keys else words
    table, dot, counter = name.rpartition(".")
    if dot and counter in COUNTERS and table and not rest:
        return f"{COUNTERS[counter][0]} of {table}"
    return series


def series_pattern_words(pattern: str) -> str:
    """A rule's series pattern in words: `unique participants of each study` for
    `uniqueHealthCodes[*]`, `rows of each table` for `*.lineCount`, else `each series
    matching ...`."""
    name, _, rest = pattern.partition("[")
    name = name.removeprefix("export.")
    if rest in ("*]", "*") and name in COUNTERS:
        words, label = COUNTERS[name]
        return f"{words.lower()} of each {label or 'key'}"
    if name in COUNTERS and not rest:
        return COUNTERS[name][0].lower()
    table, dot, counter = name.rpartition(".")
    if dot and table == "*" and counter in COUNTERS and not rest:
        words, label = COUNTERS[counter]
        return f"{words.lower()} of each {label or 'key'}"
    if "*" not in pattern:
        return f"the series {pattern}"
    return f"each series matching {pattern}"


# --- decisions ---------------------------------------------------------------------------


def _lines_of(params: Mapping[str, Any]) -> str:
    if params.get("regex"):
        return f"Lines matching /{params['regex']}/"
    levels = params.get("levels") or []
    return f"{'/'.join(levels)} lines" if levels else "Log lines"


def log_threshold_sentence(
    params: Mapping[str, Any], source: str, numbers: Mapping[str, Any]
) -> str:
    """`ERROR lines from export-worker: 57 in the last hour, over the threshold of 10.`"""
    count, threshold = int(numbers["count"]), int(params["threshold"])
    relation = "over" if count > threshold else "at" if count == threshold else "under"
    sentence = (
        f"{_lines_of(params)} from {source}: {number(count)} in the last "
        f"{last_span(int(params['window_minutes']))}, {relation} the threshold of "
        f"{number(threshold)}."
    )
    for ignored in numbers.get("ignored", []):
        if ignored["exceeded"]:
            sentence += (
                f" The ignored pattern /{ignored['pattern']}/ matched "
                f"{number(ignored['count'])}, over its own threshold of "
                f"{number(ignored['threshold'])}."
            )
    left_out = sum(i["count"] for i in numbers.get("ignored", []) if not i["exceeded"])
    if left_out:
        sentence += f" {plural(left_out, 'ignored line')} not counted."
    return sentence


def _event_words(params: Mapping[str, Any]) -> str:
    """What a deadline rule waits for, as the subject of a sentence."""
    if params["event"] == "ping":
        return f"The heartbeat '{params['check']}'"
    if params["event"] == "export":
        return "A successful export run"
    where = f" in {params['source']}" if params.get("source") else ""
    return f"The completion line '{params['regex']}'{where}"


def deadline_sentence(
    params: Mapping[str, Any],
    numbers: Mapping[str, Any],
    *,
    at: dt.datetime,
    last: dt.datetime | None,
    scheduled: dt.datetime | None,
) -> str:
    """Missing: `The completion line 'Export done' has not been seen since 2026-12-06 02:00
    UTC, 26 hours ago (expected every day at 02:00 UTC, due by 2026-12-07 03:00 UTC).`; slow,
    or on time, likewise."""
    subject = _event_words(params)
    expected = f"expected {cron_words(params['cron'])}"
    if scheduled is not None:
        due = scheduled + dt.timedelta(minutes=int(params["grace_minutes"]))
        expected += f", due by {moment(due)}"
    problem = f": {numbers['problem']} named '{params['check']}'" if numbers.get("problem") else ""
    if numbers.get("missed"):
        if last is None:
            return f"{subject} has never been seen{problem} ({expected})."
        ago = span((at - last).total_seconds())
        return f"{subject} has not been seen since {moment(last)}, {ago} ago ({expected})."
    if numbers.get("slow"):
        latest, usual = float(numbers["duration_s"]), float(numbers["baseline_s"])
        times = number(round(latest / usual, 1)) if usual else "many"
        return (
            f"{subject} was slow: it took {span(latest)}, {times} times the usual "
            f"{span(usual)} (the limit is {number(numbers['slow_factor'])} times)."
        )
    if last is None:
        return f"{subject} has not been seen yet{problem}, and none is due yet ({expected})."
    ago = span(max((at - last).total_seconds(), 0))
    return f"{subject} was last seen {moment(last)}, {ago} ago, on time ({expected})."


def _spreads(numbers: Mapping[str, Any]) -> str:
    side = "below" if numbers["change"] < 0 else "above"
    if numbers["mads"] is None:
        return "with no spread in the points before"
    return f"{number(numbers['mads'])} spreads {side}"


def shift_sentence(
    params: Mapping[str, Any], series: str, numbers: Mapping[str, Any], *, firing: bool
) -> str:
    """Firing: `Unique participants of study-a fell to 31, from a median of 62 (-50%, 4.1
    spreads below).`; quiet: where the value stands and what the rule would report."""
    name = series_words(series)
    if "min_history" in numbers:
        return (
            f"{name} has only {plural(int(numbers['history']), 'earlier point')}, fewer than "
            f"the {number(numbers['min_history'])} a shift test needs."
        )
    value, median, change = numbers["value"], numbers["median"], numbers["change"]
    if "min_baseline" in numbers:
        return (
            f"{name} is {number(value)}; its median of {number(median)} is under "
            f"{number(numbers['min_baseline'])}, too small a count to judge a shift."
        )
    shown = percent(change, numbers["relative"])
    if change == 0:
        figures = "no change"
    else:
        figures = ", ".join(part for part in (shown, _spreads(numbers)) if part)
    if firing:
        verb = "fell to" if change < 0 else "rose to"
        return f"{name} {verb} {number(value)}, from a median of {number(median)} ({figures})."
    direction = {"drop": "down", "rise": "up"}.get(str(params["direction"]), "either way")
    floor = number(round(float(params["min_relative"]) * 100))
    return (
        f"{name} is {number(value)}, against a median of {number(median)} ({figures}); the "
        f"rule reports {number(params['k'])} spreads and {floor}% {direction}."
    )


def probe_sentence(params: Mapping[str, Any], numbers: Mapping[str, Any]) -> str:
    """`https://x/health answered 503 instead of 200, in 120 ms.` or `... answered 200 in 2,430
    ms, over the limit of 2,000 ms.` or `The probe of https://x/ failed: ConnectError: ...`."""
    url = params["url"]
    if "error" in numbers:
        return f"The probe of {url} failed: {numbers['error']}."
    status, expected = numbers["status"], params["expected_status"]
    latency, limit = float(numbers["latency_ms"]), int(params["latency_ms"])
    timing = f"in {number(round(latency))} ms"
    if latency > limit:
        timing += f", over the limit of {number(limit)} ms"
    if status != expected:
        return f"{url} answered {status} instead of {expected}, {timing}."
    if latency > limit:
        return f"{url} answered {status} {timing}."
    return f"{url} answered {status} {timing} (the limit is {number(limit)} ms)."


def ci_silence_sentence(params: Mapping[str, Any], numbers: Mapping[str, Any]) -> str:
    """`The CI pipeline 'acme' has sent no event for 30.5 hours, over the limit of 24 hours
    (the last at 2026-12-06 02:00 UTC).` or when it is quiet, when it last spoke."""
    name = params["integration"]
    if numbers.get("problem"):
        return f"There is no integration named '{name}' to watch for CI events."
    hours, limit = float(numbers["hours_since"]), float(params["hours"])
    since = span(hours * 3600)
    last = numbers.get("last_event_at")
    when = f"the last at {moment(dt.datetime.fromisoformat(last))}" if last else "none ever"
    if hours >= limit:
        return (
            f"The CI pipeline '{name}' has sent no event for {since}, over the limit of "
            f"{plural_of(limit, 'hour')} ({when})."
        )
    return (
        f"The CI pipeline '{name}' last sent an event {since} ago (the limit is "
        f"{plural_of(limit, 'hour')})."
    )


# --- rules -------------------------------------------------------------------------------


def explain(rule: AlarmRule) -> str:
    """What the rule checks, as a sentence built from its settings."""
    return explain_params(rule.kind, rule.params)


def explain_params(kind: str, p: Mapping[str, Any]) -> str:
    """What a rule of `kind` with settings `p` checks, as a sentence."""
    if kind == RuleKind.log_threshold.value:
        lines = _lines_of(p)
        lines = lines[0].lower() + lines[1:] if lines.startswith(("Lines", "Log")) else lines
        sources = ", ".join(p["sources"]) if p.get("sources") else "any one source"
        sentence = (
            f"Fires when {sources} logs {number(p['threshold'])} or more {lines} in "
            f"{window(int(p['window_minutes']))}"
        )
        if p.get("ignore"):
            ignored = "; ".join(
                f"/{i['pattern']}/ (unless it reaches {number(i['threshold'])} itself)"
                for i in p["ignore"]
            )
            sentence += f", not counting lines matching {ignored}"
        return sentence + "."
    if kind == RuleKind.deadline.value:
        subject = _event_words(p)
        subject = subject[0].lower() + subject[1:]
        sentence = (
            f"Expects {subject} {cron_words(p['cron'])}, with "
            f"{plural(int(p['grace_minutes']), 'minute')} of grace, and fires when none has "
            f"come by then"
        )
        if p.get("slow_factor"):
            sentence += (
                f", or when one takes more than {number(p['slow_factor'])} times the median "
                f"of the {number(p['baseline_runs'])} before"
            )
        return sentence + "."
    if kind == RuleKind.metric_shift.value:
        direction = {"drop": "falls", "rise": "rises"}.get(str(p["direction"]), "moves")
        weekday = " on the same weekday" if p.get("same_weekday") else ""
        sentence = (
            f"Fires when {series_pattern_words(str(p['series']))} {direction} more than "
            f"{number(p['k'])} spreads (scaled median absolute deviations) and at least "
            f"{number(round(float(p['min_relative']) * 100))}% away from the median of its "
            f"last {number(p['points'])} points{weekday}; it needs "
            f"{number(p['min_history'])} earlier points"
        )
        if p.get("min_baseline"):
            sentence += f", and a median of at least {number(p['min_baseline'])}"
        return sentence + "."
    if kind == RuleKind.http_probe.value:
        return (
            f"Every {plural(int(p['interval_seconds']), 'second')}, asks {p['url']} and fires "
            f"when it does not answer {p['expected_status']} within {number(p['latency_ms'])} "
            f"ms (giving up after {plural(int(p['timeout_seconds']), 'second')})."
        )
    if kind == RuleKind.ci_silence.value:
        return (
            f"Fires when the CI integration '{p['integration']}' sends no pipeline event for "
            f"{plural_of(float(p['hours']), 'hour')}."
        )
    return f"A {kind} rule."
