"""Log query fixtures: an allowed log root in the test's home and generated access logs."""

from __future__ import annotations

import datetime as dt
import gzip
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import clear_caches

START = dt.datetime(2026, 11, 23, tzinfo=dt.UTC)
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0",
    "curl/8.5.0",
]
PATHS = [
    "/",
    "/api/v1/items?page=2",
    "/static/app.js",
    "/update/6/Firefox/132.0/20241101/WINNT_x86_64-msvc-x64/en-US/release/update.xml",
    "/update/6/Firefox/132.0/20241101/Linux_x86_64-gcc3/en-US/release/update.xml",
    "/update/6/Firefox/132.0/20241101/WINNT_x86-msvc/en-US/beta/update.xml",
]


@pytest.fixture
def log_root(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty folder that DUTYDESK_LOG_ROOTS allows (and nothing else)."""
    root = home.parent / "logs"
    root.mkdir(parents=True)
    monkeypatch.setenv("DUTYDESK_LOG_ROOTS", str(root))
    clear_caches()
    yield root


def access_line(rng: random.Random) -> str:
    """One nginx combined line with a random time of the day, path, status, size and agent."""
    moment = START + dt.timedelta(seconds=rng.randrange(86_400))
    size = rng.choice(["-", str(rng.randrange(0, 50_000))])
    return (
        f"10.1.{rng.randrange(256)}.{rng.randrange(256)} - - "
        f'[{moment:%d/%b/%Y:%H:%M:%S +0000}] "GET {rng.choice(PATHS)} HTTP/1.1" '
        f'{rng.choice([200, 200, 304, 404, 500])} {size} "-" "{rng.choice(AGENTS)}"\n'
    )


def write_access_logs(folder: Path, files: int, lines: int, seed: int = 7) -> list[Path]:
    """`files` gzipped nginx logs of `lines` lines each, in two sub-folders."""
    rng = random.Random(seed)
    written = []
    for index in range(files):
        path = folder / f"part{index % 2}" / f"access-{index:03d}.log.gz"
        path.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(path, "wt") as handle:
            handle.writelines(access_line(rng) for _ in range(lines))
        written.append(path)
    return written
