"""The synthetic studies' schemas and the values, attachments and mistakes their records hold."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

# What a template's maker gets: the random source and the record's local time in ISO form.
ValueMaker = Callable[[random.Random, str], dict[str, Any]]
ContentMaker = Callable[[random.Random], tuple[bytes, str]]
T = TypeVar("T")


@dataclass(frozen=True)
class SchemaTemplate:
    """One generated schema: its fields, how often it is uploaded and how values are made."""

    schema_id: str
    revision: int
    weight: float
    fields: list[dict[str, Any]]
    make: ValueMaker

    @property
    def malformable(self) -> list[dict[str, Any]]:
        """Fields always present whose value a mistake can replace (not attachments or blobs)."""
        return [f for f in self.fields if f["type"] not in NEVER_MALFORMED]


NEVER_MALFORMED = frozenset(
    {"ATTACHMENT_V2", "ATTACHMENT_JSON_BLOB", "LARGE_TEXT_ATTACHMENT", "INLINE_JSON_BLOB"}
)
HANDS = ("left", "right", "both")
MOODS = ("great", "good", "okay", "bad", "awful")
SYMPTOMS = ("fatigue", "tremor", "pain", "stiffness", "none")
OTHER_SYMPTOMS = ("dizziness", "headache", "Nausea & vomiting")
ACTIVITIES = ("walking", "cycling", "swimming", "yoga")
EDUCATION = ("primary", "secondary", "bachelor", "master", "doctorate")
DEVICES: tuple[Any, ...] = (
    [1, 3, 5, 7, "this is a string"],
    {"watch": True, "scale": False},
    ["phone"],
    [],
)
COMMENTS = (
    "Felt <b>great</b> today & slept well",
    "tired\n\nheadache <script>alert('x')</script>after lunch",
    "  lots   of\tspaces  ",
    "Café ☕ with a friend — nice",
    'He said "less than 3 < 5" \\ ok',
    "A long day. " * 30,
    "",
)
NOTES = (
    "<p>Diagnosed in <i>2015</i>; tremor on the <b>left</b>.</p>",
    "No notes",
    "Takes levodopa 3x daily &amp; walks every morning. " * 40,
)
TRANSCRIPTS = ("the quick brown fox", "aaaaah", "one two three four five", "")


def between(rng: random.Random, low: int, high: int) -> int:
    """A whole number in [low, high); `randrange` costs four times as much per record."""
    return low + int(rng.random() * (high - low))


def pick(rng: random.Random, choices: Sequence[T]) -> T:
    """One of `choices`, uniformly."""
    return choices[int(rng.random() * len(choices))]


def _tapping(rng: random.Random, at: str) -> dict[str, Any]:
    return {
        "tapCountLeft": between(rng, 20, 120),
        "tapCountRight": between(rng, 20, 120),
        "tapIntervalMean": round(rng.random() * 0.5 + 0.1, 4),
        "startTime": at,
        "handUsed": pick(rng, HANDS),
    }


def _walking(rng: random.Random, _at: str) -> dict[str, Any]:
    return {"steps": between(rng, 0, 400), "distanceMeters": round(rng.random() * 300, 2)}


def _voice(rng: random.Random, at: str) -> dict[str, Any]:
    return {"durationSeconds": round(rng.random() * 20 + 5, 3), "recordedAt": at}


def _mood(rng: random.Random, at: str) -> dict[str, Any]:
    symptoms = [pick(rng, SYMPTOMS)]
    if rng.random() < 0.2:
        symptoms.append(pick(rng, OTHER_SYMPTOMS))
    return {
        "mood": pick(rng, MOODS),
        "symptoms": symptoms,
        "activities": [pick(rng, ACTIVITIES)] if rng.random() < 0.7 else [],
        "answeredAt": at,
        "comment": pick(rng, COMMENTS),
        "tookMedication": rng.random() < 0.6,
        "sleepHours": round(rng.random() * 6 + 3, 1),
    }


def _background(rng: random.Random, _at: str) -> dict[str, Any]:
    return {
        "birthYear": between(rng, 1935, 2005),
        "diagnosisDate": f"{between(rng, 1990, 2024)}-{between(rng, 1, 13):02d}-"
        f"{between(rng, 1, 29):02d}",
        "education": pick(rng, EDUCATION),
        "devices": pick(rng, DEVICES),
        "notes": pick(rng, NOTES),
        "smoker": rng.random() < 0.15,
        "sleepTime": f"{between(rng, 20, 24):02d}:{15 * between(rng, 0, 4):02d}:00.000",
        "exerciseDuration": f"PT{between(rng, 0, 120)}M",
    }


TEMPLATES: tuple[SchemaTemplate, ...] = (
    SchemaTemplate(
        "tapping",
        2,
        0.30,
        [
            {"name": "tapCountLeft", "type": "INT"},
            {"name": "tapCountRight", "type": "INT"},
            {"name": "tapIntervalMean", "type": "FLOAT"},
            {"name": "startTime", "type": "TIMESTAMP"},
            {"name": "handUsed", "type": "SINGLE_CHOICE", "maxLength": 8},
            {
                "name": "rawTaps",
                "type": "ATTACHMENT_V2",
                "fileExtension": ".json",
                "mimeType": "application/json",
            },
        ],
        _tapping,
    ),
    SchemaTemplate(
        "walking",
        1,
        0.25,
        [
            {"name": "accel_walking_outbound.json", "type": "ATTACHMENT_JSON_BLOB"},
            {"name": "steps", "type": "INT"},
            {"name": "distanceMeters", "type": "FLOAT"},
        ],
        _walking,
    ),
    SchemaTemplate(
        "voice",
        1,
        0.10,
        [
            {
                "name": "audio",
                "type": "ATTACHMENT_V2",
                "fileExtension": ".m4a",
                "mimeType": "audio/mp4",
            },
            {"name": "transcript", "type": "LARGE_TEXT_ATTACHMENT"},
            {"name": "durationSeconds", "type": "FLOAT"},
            {"name": "recordedAt", "type": "TIMESTAMP"},
        ],
        _voice,
    ),
    SchemaTemplate(
        "mood-survey",
        3,
        0.25,
        [
            {"name": "mood", "type": "SINGLE_CHOICE", "multiChoiceAnswerList": list(MOODS)},
            {
                "name": "symptoms",
                "type": "MULTI_CHOICE",
                "multiChoiceAnswerList": list(SYMPTOMS),
                "allowOtherChoices": True,
            },
            {
                "name": "activities",
                "type": "MULTI_CHOICE",
                "multiChoiceAnswerList": list(ACTIVITIES),
            },
            {"name": "answeredAt", "type": "TIMESTAMP"},
            {"name": "comment", "type": "STRING", "maxLength": 200},
            {"name": "tookMedication", "type": "BOOLEAN"},
            {"name": "sleepHours", "type": "FLOAT"},
        ],
        _mood,
    ),
    SchemaTemplate(
        "background-survey",
        1,
        0.10,
        [
            {"name": "birthYear", "type": "INT"},
            {"name": "diagnosisDate", "type": "CALENDAR_DATE"},
            {"name": "education", "type": "SINGLE_CHOICE"},
            {"name": "devices", "type": "INLINE_JSON_BLOB"},
            {"name": "notes", "type": "STRING", "unboundedText": True},
            {"name": "smoker", "type": "BOOLEAN"},
            {"name": "sleepTime", "type": "TIME_V2"},
            {"name": "exerciseDuration", "type": "DURATION_V2"},
        ],
        _background,
    ),
)
UPLOAD_METADATA_FIELDS = [
    {"name": "startDate", "type": "TIMESTAMP"},
    {"name": "taskRunCount", "type": "INT"},
]


def _json_bytes(rng: random.Random, samples: int) -> bytes:
    rows = [
        {"t": i * 0.01, "x": round(rng.random(), 3), "y": round(rng.random(), 3)}
        for i in range(samples)
    ]
    return json.dumps(rows).encode()


# How each attachment field's bytes are made: (content, content type).
CONTENT: dict[str, ContentMaker] = {
    "rawTaps": lambda rng: (_json_bytes(rng, 8), "application/json"),
    "accel_walking_outbound.json": lambda rng: (_json_bytes(rng, 12), "text/json"),
    "audio": lambda rng: (rng.randbytes(256), "audio/mp4"),
    "transcript": lambda rng: (pick(rng, TRANSCRIPTS).encode(), "text/plain"),
}
RAW_DATA: ContentMaker = lambda rng: (b"PK\x03\x04" + rng.randbytes(60), "application/zip")  # noqa: E731

# Values that do not fit each type, as phones and old app versions send them.
MISTAKES: dict[str, tuple[Any, ...]] = {
    "INT": ("12", "twelve", 3.7),
    "FLOAT": ("0.42", "NaN", True),
    "BOOLEAN": ("true", "yes", 1),
    "TIMESTAMP": ("yesterday", "2024-13-45T25:61:00", "", False),
    "STRING": (42, ["a", "b"], {"text": "x"}),
    "SINGLE_CHOICE": (3, ["great"], True),
    "MULTI_CHOICE": ("fatigue", 7),
    "CALENDAR_DATE": ("31/12/1999", "1999-02-30", 19991231),
    "TIME_V2": (930, True),
    "DURATION_V2": (90, False),
}


def mistake(rng: random.Random, field_type: str) -> Any:
    """A value that does not fit `field_type` (never null: null fits every field)."""
    return pick(rng, MISTAKES[field_type])
