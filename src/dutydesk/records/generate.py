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
import re
import string
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
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
from dutydesk.records.models import Participant, Record, RecordsBase, Schema, Study
from dutydesk.records.store import tune_for_bulk_load

BATCH = 5_000
MALFORMED_SHARE = 0.02  # records with one value of the wrong type
NO_SCHEMA_SHARE = 0.01  # records without a schema (Bridge's default table)
DAY_MS = 86_400_000
STUDY_ID = re.compile(r"[A-Za-z0-9_-]{1,100}")


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
    study_ids: tuple[str, ...] = ()  # the studies made
    unchanged: tuple[str, ...] = ()  # named studies already stored as this run would make them

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


def _study_row(rng: random.Random, study_id: str, index: int, count: int) -> dict[str, Any]:
    """The study row: a project and team, except one unconfigured study when there are 3+."""
    unconfigured = count > 2 and index == count - 1
    return {
        "name": f"Synthetic study {study_id.removeprefix('study-').upper()}",
        "project": None if unconfigured else f"syn{rng.randrange(10**7, 10**8)}",
        "data_access_team": None if unconfigured else str(rng.randrange(3_000_000, 4_000_000)),
        "study_id_excluded_in_export": index == 1,
    }


def next_free_ids(taken: set[str], count: int) -> list[str]:
    """The first `count` names of the study-a, study-b, ... sequence that are not taken."""
    ids: list[str] = []
    size = count
    while len(ids) < count:
        size += count
        ids = [name for name in study_ids(size + len(taken)) if name not in taken][:count]
    return ids


def _same_study(
    session: Session,
    study: Study,
    row: dict[str, Any],
    templates: list[SchemaTemplate],
    participants: int,
    records: int,
) -> bool:
    """Whether the stored study is the one this generation would make (its row, schemas,
    participant and record counts): generating it again then adds nothing."""
    stored_row = {name: getattr(study, name) for name in row}
    schemas = set(
        session.execute(
            select(Schema.schema_id, Schema.revision).where(Schema.study_id == study.id)
        )
    )
    counts = (
        session.scalar(select(func.count()).where(Participant.study_id == study.id)),
        session.scalar(select(func.count()).where(Record.study_id == study.id)),
    )
    return (
        stored_row == row
        and schemas == {(t.schema_id, t.revision) for t in templates}
        and counts == (participants, records)
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
    names: Sequence[str] | None = None,
) -> GenerateReport:
    """Add `studies` synthetic studies to the record store; the same seed gives the same data.

    Each study gets `participants` participants and `records_per_day` records on each of the
    `days` days ending with `end_date` (UTC). `schemas` picks the schemas: all five, the first
    N, or those named. The studies take the next free names of study-a, study-b, ... (so a
    second run adds studies beside the first run's), or the `names` given. A named study
    that is already stored is left alone when it is the one this generation would make, and
    refused when it holds something else.
    """
    if min(studies, participants, days) < 1 or records_per_day < 0:
        raise GenerateError(
            "studies, participants and days must be at least 1, records per day at least 0"
        )
    if not 0.0 <= attachment_share <= 1.0:
        raise GenerateError(f"attachment share must be between 0 and 1, got {attachment_share}")
    templates = pick_templates(schemas)
    if names is not None:
        bad = [name for name in names if not STUDY_ID.fullmatch(name)]
        if bad or not names or len(set(names)) != len(names):
            shown = bad or list(names)
            raise GenerateError(
                f"study names must be distinct, 1 to 100 letters, digits, '-' or '_'; got {shown}"
            )
        studies = len(names)
    first_day = end_date - dt.timedelta(days=days - 1)
    first_day_ms = (first_day - dt.date(1970, 1, 1)).days * DAY_MS
    started = time.perf_counter()
    withdrawn = malformed = 0
    with session_factory() as session:
        taken = set(session.scalars(select(Study.id)))
        ids = list(names) if names is not None else next_free_ids(taken, studies)
        rows = {
            study_id: _study_row(random.Random(f"{seed}:{study_id}"), study_id, index, studies)
            for index, study_id in enumerate(ids)
        }
        unchanged: list[str] = []
        clashes: list[str] = []
        for study_id in sorted(taken & set(ids)):
            study = session.get(Study, study_id)
            assert study is not None
            same = _same_study(
                session, study, rows[study_id], templates, participants, days * records_per_day
            )
            (unchanged if same else clashes).append(study_id)
        if clashes:
            raise GenerateError(
                f"{', '.join(clashes)} already in the record store with other content (another "
                "seed or other counts); name other studies, or leave out --study to add new ones"
            )
        writer = Writer(session)
        made = [study_id for study_id in ids if study_id not in unchanged]
        for study_id in made:
            index = ids.index(study_id)
            rng = random.Random(f"{seed}:{study_id}")
            row = _study_row(rng, study_id, index, studies)
            service.upsert_study(
                session, study_id, upload_metadata_fields=UPLOAD_METADATA_FIELDS, **row
            )
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
        studies=len(made),
        participants=len(made) * participants,
        withdrawn=withdrawn,
        schemas=len(made) * len(templates),
        records=len(made) * days * records_per_day,
        malformed=malformed,
        attachments=writer.attachment_count,
        seconds=time.perf_counter() - started,
        study_ids=tuple(made),
        unchanged=tuple(unchanged),
    )
