"""The synthetic participants: scopes (some withdrew), time zones, groups and devices."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from dutydesk.records.models import SharingScope

TIME_ZONES = (
    ("-0800", "-08:00"),
    ("-0500", "-05:00"),
    ("+0000", "+00:00"),
    ("+0100", "+01:00"),
    ("+0530", "+05:30"),
    ("+0900", "+09:00"),
)
ODD_RECORD_SCOPES = ("", None, "sponsors_and_partners", "SHARE_EVERYTHING")
PHONES = ("iPhone 12", "iPhone SE", "Pixel 7", "SM-G991B")
NO, SPONSORS, EVERYONE = (scope.value for scope in SharingScope)


@dataclass(frozen=True)
class Person:
    """One synthetic participant and what their records carry."""

    health_code: str
    scope: str  # the scope held now
    record_scope: str | None  # the scope the records carry (as at upload)
    external_id: str | None
    data_groups: str | None  # JSON text, made once: records repeat it
    substudies: str | None  # JSON text
    day_offset: int
    zone: str
    iso_zone: str
    zone_ms: int
    metadata: str  # JSON text


_CLEAR_VERSION_AND_VARIANT = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_VERSION_4_VARIANT_RFC = (0x4000 << 64) | (0x8000 << 48)


def _json(value: object) -> str | None:
    return None if value is None else json.dumps(value)


def new_id(rng: random.Random) -> str:
    """A UUID4-shaped id drawn from `rng`, so ids repeat with the seed."""
    # What uuid.UUID(int=..., version=4) gives, at a third of the cost.
    bits = rng.getrandbits(128) & _CLEAR_VERSION_AND_VARIANT | _VERSION_4_VARIANT_RFC
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def make_people(rng: random.Random, count: int) -> list[Person]:
    """Participants with a mix of scopes; some withdrew, some records carry an odd scope."""
    withdrawn = max(1, round(count * 0.10)) if count >= 4 else 0
    odd = max(1, round(count * 0.05)) if count >= 4 else 0
    never = round(count * 0.10)
    everyone = round((count - withdrawn - odd - never) * 0.45)
    kinds = ["withdrawn"] * withdrawn + ["odd"] * odd + ["never"] * never + ["everyone"] * everyone
    kinds += ["sponsors"] * (count - len(kinds))
    rng.shuffle(kinds)
    people = []
    for number, kind in enumerate(kinds, 1):
        scope, record_scope = {
            "withdrawn": (NO, SPONSORS),
            "odd": (SPONSORS, ODD_RECORD_SCOPES[rng.randrange(len(ODD_RECORD_SCOPES))]),
            "never": (NO, NO),
            "everyone": (EVERYONE, EVERYONE),
            "sponsors": (SPONSORS, SPONSORS),
        }[kind]
        external = f"EXT-{number:05d}" if rng.random() < 0.3 else None
        zone, iso_zone = TIME_ZONES[rng.randrange(len(TIME_ZONES))]
        sign = -1 if zone[0] == "-" else 1
        groups = [["test_user"], ["control"], ["parkinson", "sensor_group"], None][rng.randrange(4)]
        people.append(
            Person(
                health_code=new_id(rng),
                scope=scope,
                record_scope=record_scope,
                external_id=external,
                data_groups=_json(groups),
                substudies=_json({"sub-a": external or "<none>"} if rng.random() < 0.5 else None),
                day_offset=rng.randrange(0, 90),
                zone=zone,
                iso_zone=iso_zone,
                zone_ms=sign * (int(zone[1:3]) * 60 + int(zone[3:])) * 60_000,
                metadata=json.dumps(
                    {
                        "appVersion": f"version 2.{rng.randrange(6)}.0, "
                        f"build {rng.randrange(90, 130)}",
                        "phoneInfo": PHONES[rng.randrange(len(PHONES))],
                    }
                ),
            )
        )
    return people
