"""Synthetic studies for demos, tests and benchmarks: realistic, and the same for the same seed.

Rows go in with Core `insert()` executemany in batches of `BATCH`, a commit every 20 batches
(see `_bulk`), because the benchmarks need millions of records.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import json
import random
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from dutydesk.records import service
from dutydesk.records._bulk import Writer
from dutydesk.records._people import NO, SPONSORS, Person, make_people, new_id
from dutydesk.records._synthetic import (
    CONTENT,
    RAW_DATA,
    TEMPLATES,
    UPLOAD_METADATA_FIELDS,
    SchemaTemplate,
    between,
    mistake,
    pick,
)
from dutydesk.records.fields import describe_problem
from dutydesk.records.models import RecordsBase, Study
from dutydesk.records.store import tune_for_bulk_load

BATCH = 5_000
MALFORMED_SHARE = 0.02  # records with one value of the wrong type
NO_SCHEMA_SHARE = 0.01  # records without a schema (Bridge's default table)
DAY_MS = 86_400_000


class GenerateError(ValueError):
    """The generator cannot run as asked; the message says why."""


@dataclass(frozen=True)
class GenerateReport:
    """What the generator made and how long the writing took."""

    studies: int
    participants: int
    withdrawn: int
    schemas: int
    records: int
    malformed: int
    attachments: int
    seconds: float

    @property
    def records_per_second(self) -> float:
        """Records written per second of wall time."""
        return self.records / self.seconds if self.seconds else 0.0


def study_ids(count: int) -> list[str]:
    """`study-a`, `study-b`, ... `study-z`, `study-aa`, ... for `count` studies."""
    letters = string.ascii_lowercase
    ids = []
    for index in range(count):
        name = ""
        index += 1
        while index:
            index, rest = divmod(index - 1, 26)
            name = letters[rest] + name
        ids.append(f"study-{name}")
    return ids


def pick_templates(schemas: int | Sequence[str] | None) -> list[SchemaTemplate]:
    """The schemas to generate: all, the first N, or those named."""
    if schemas is None:
        return list(TEMPLATES)
    if isinstance(schemas, int):
        if not 1 <= schemas <= len(TEMPLATES):
            raise GenerateError(f"schemas must be 1 to {len(TEMPLATES)}, got {schemas}")
        return list(TEMPLATES[:schemas])
    known = {template.schema_id: template for template in TEMPLATES}
    unknown = [name for name in schemas if name not in known]
    if unknown or not schemas:
        raise GenerateError(f"unknown schemas {unknown}; choose from {', '.join(known)}")
    return [known[name] for name in schemas]


def _iso(local_ms: int, iso_zone: str, dates: dict[int, str]) -> str:
    """An ISO 8601 time with offset from local epoch ms (built by hand: it is made per record)."""
    day, rest = divmod(local_ms, DAY_MS)
    date = dates.get(day)
    if date is None:
        date = dates[day] = (dt.date(1970, 1, 1) + dt.timedelta(days=day)).isoformat()
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{date}T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}{iso_zone}"


def _write_study_records(
    writer: Writer,
    rng: random.Random,
    study_id: str,
    people: list[Person],
    templates: list[SchemaTemplate],
    *,
    first_day_ms: int,
    days: int,
    per_day: int,
    attachment_share: float,
) -> int:
    """Queue a study's records (and their attachments); returns how many carry a mistake."""
    cumulative = list(itertools.accumulate(t.weight for t in templates))
    total = cumulative[-1]
    attached = {
        t.schema_id: [(f["name"], CONTENT[f["name"]]) for f in t.fields if f["name"] in CONTENT]
        for t in templates
    }
    malformable = {t.schema_id: t.malformable + UPLOAD_METADATA_FIELDS for t in templates}
    metadata_names = {field["name"] for field in UPLOAD_METADATA_FIELDS}
    dates: dict[int, str] = {}
    count, malformed = len(people), 0
    for day in range(days):
        day_ms = first_day_ms + day * DAY_MS
        for _ in range(per_day):
            person = people[int(count * rng.random() ** 2)]
            uploaded = day_ms + int(rng.random() * DAY_MS)
            created = uploaded - between(rng, 1_000, 3_600_000)
            at = _iso(created + person.zone_ms, person.iso_zone, dates)
            template: SchemaTemplate | None = None
            if rng.random() >= NO_SCHEMA_SHARE:
                template = templates[bisect.bisect(cumulative, rng.random() * total)]
            data: dict[str, Any] = template.make(rng, at) if template else {}
            user_metadata: dict[str, Any] | None = None
            errors = None
            if template is not None:
                for name, make in attached[template.schema_id]:
                    if rng.random() < attachment_share:
                        data[name] = writer.attach(rng, make)
                if rng.random() < MALFORMED_SHARE:
                    candidates = malformable[template.schema_id]
                    field = pick(rng, candidates)
                    bad = mistake(rng, field["type"])
                    if field["name"] in metadata_names:
                        user_metadata = {"startDate": at, "taskRunCount": day + 1}
                        user_metadata[field["name"]] = bad
                        label = "metadata field"
                    else:
                        data[field["name"]] = bad
                        label = "field"
                    errors = describe_problem(field, bad, label)
                    malformed += 1
            raw = writer.attach(rng, RAW_DATA) if rng.random() < attachment_share else None
            if user_metadata is None:
                # Made by hand: `at` needs no escaping, and dumps() per record is costly.
                metadata_json = f'{{"startDate": "{at}", "taskRunCount": {day + 1}}}'
            else:
                metadata_json = json.dumps(user_metadata)
            writer.records.append(
                {
                    "id": new_id(rng),
                    "study_id": study_id,
                    "health_code": person.health_code,
                    "schema_id": template.schema_id if template else None,
                    "schema_revision": template.revision if template else None,
                    "uploaded_on": uploaded,
                    "created_on": created,
                    "created_on_time_zone": person.zone,
                    "data": json.dumps(data),
                    "metadata": person.metadata,
                    "user_metadata": metadata_json,
                    "user_sharing_scope": person.record_scope,
                    "user_external_id": person.external_id,
                    "user_data_groups": person.data_groups,
                    "user_substudy_memberships": person.substudies,
                    "validation_errors": errors,
                    "day_in_study": person.day_offset + day + 1,
                    "raw_data_attachment_id": raw,
                }
            )
            if len(writer.records) >= BATCH:
                writer.flush()
    return malformed


def _add_study(session: Session, rng: random.Random, study_id: str, index: int, count: int) -> None:
    """The study row: a project and team, except one unconfigured study when there are 3+."""
    unconfigured = count > 2 and index == count - 1
    service.upsert_study(
        session,
        study_id,
        f"Synthetic study {study_id.removeprefix('study-').upper()}",
        project=None if unconfigured else f"syn{rng.randrange(10**7, 10**8)}",
        data_access_team=None if unconfigured else str(rng.randrange(3_000_000, 4_000_000)),
        study_id_excluded_in_export=index == 1,
        upload_metadata_fields=UPLOAD_METADATA_FIELDS,
    )


def generate(
    session_factory: sessionmaker[Session],
    *,
    seed: int,
    studies: int,
    participants: int,
    days: int,
    records_per_day: int,
    attachment_share: float,
    end_date: dt.date,
    schemas: int | Sequence[str] | None = None,
) -> GenerateReport:
    """Fill the record store with `studies` synthetic studies; the same seed gives the same data.

    Each study gets `participants` participants and `records_per_day` records on each of the
    `days` days ending with `end_date` (UTC). `schemas` picks the schemas: all five, the first
    N, or those named. Refuses when one of the studies is already in the store.
    """
    if min(studies, participants, days) < 1 or records_per_day < 0:
        raise GenerateError(
            "studies, participants and days must be at least 1, records per day at least 0"
        )
    if not 0.0 <= attachment_share <= 1.0:
        raise GenerateError(f"attachment share must be between 0 and 1, got {attachment_share}")
    templates = pick_templates(schemas)
    ids = study_ids(studies)
    first_day = end_date - dt.timedelta(days=days - 1)
    first_day_ms = (first_day - dt.date(1970, 1, 1)).days * DAY_MS
    started = time.perf_counter()
    withdrawn = malformed = 0
    with session_factory() as session:
        present = list(session.scalars(select(Study.id).where(Study.id.in_(ids))))
        if present:
            raise GenerateError(
                f"{', '.join(sorted(present))} already in the record store; generate into an "
                "empty store (or point DUTYDESK_RECORDS_URL at a new one)"
            )
        writer = Writer(session)
        for index, study_id in enumerate(ids):
            rng = random.Random(f"{seed}:{study_id}")
            _add_study(session, rng, study_id, index, studies)
            for template in templates:
                service.upsert_schema(
                    session, study_id, template.schema_id, template.revision, template.fields
                )
            people = make_people(rng, participants)
            withdrawn += sum(p.scope == NO and p.record_scope == SPONSORS for p in people)
            session.execute(
                insert(RecordsBase.metadata.tables["participants"]),
                [
                    {"study_id": study_id, "health_code": p.health_code, "sharing_scope": p.scope}
                    for p in people
                ],
            )
            malformed += _write_study_records(
                writer,
                rng,
                study_id,
                people,
                templates,
                first_day_ms=first_day_ms,
                days=days,
                per_day=records_per_day,
                attachment_share=attachment_share,
            )
        writer.flush()
        tune_for_bulk_load(session.connection(), loading=False)
        session.commit()
    return GenerateReport(
        studies=studies,
        participants=studies * participants,
        withdrawn=withdrawn,
        schemas=studies * len(templates),
        records=studies * days * records_per_day,
        malformed=malformed,
        attachments=writer.attachment_count,
        seconds=time.perf_counter() - started,
    )
