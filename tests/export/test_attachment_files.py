"""Attachment files are written whole or not at all: a process killed while writing one leaves
no file under its name, and the next run writes each missing file once and leaves the others
as they are."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dutydesk.export import _engine, warehouse
from dutydesk.export.request import SharingMode
from dutydesk.export.warehouse import Warehouse
from tests.export.conftest import generated_store, whole_window_job

ROOT = Path(__file__).resolve().parents[2]
KILL_AT = 12  # the attachment file whose writing is cut short


def visible_files(folder: Path) -> dict[str, bytes]:
    """The files of `folder` whose names do not start with a dot, by name."""
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.name[0] != "."}


def inodes(folder: Path) -> dict[str, int]:
    """The inode of each file of `folder`, by name: a file written again gets a new one."""
    return {path.name: path.stat().st_ino for path in folder.iterdir()}


def die_while_writing(unnamed: bool) -> None:
    """In this process: writing the KILL_AT-th file writes half of it, then the process is
    killed (SIGKILL, nothing cleaned up). `unnamed` False takes the way of file systems without
    unnamed files: a temporary name, then a move."""
    warehouse._UNNAMED_FILES = unnamed
    write_all = warehouse._write_all
    calls = 0

    def write_half_and_die(handle: int, data: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls < KILL_AT:
            write_all(handle, data)
            return
        os.write(handle, data[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)

    warehouse._write_all = write_half_and_die


def run_in_child(code: str) -> subprocess.CompletedProcess[str]:
    """Run `code` in a new Python process at the repository's root."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def files_to_write(count: int) -> list[tuple[str, bytes]]:
    """`count` files of different sizes, the largest 1 MiB (more than one page of writes)."""
    return [
        (f"file-{index:03d}.json", bytes([index]) * (1 + index * 9_000)) for index in range(count)
    ]


@pytest.mark.parametrize("unnamed", [True, False], ids=["unnamed-then-linked", "renamed"])
def test_a_process_killed_mid_file_leaves_no_partial_file_and_the_rerun_writes_each_once(
    tmp_path: Path, unnamed: bool
) -> None:
    folder = tmp_path / "warehouse" / "study" / "table" / "attachments"
    wanted = files_to_write(KILL_AT + 5)
    killed = run_in_child(
        "from pathlib import Path\n"
        "from dutydesk.export.warehouse import Warehouse\n"
        "from tests.export.test_attachment_files import die_while_writing, files_to_write\n"
        f"die_while_writing({unnamed!r})\n"
        f"Warehouse.at({str(tmp_path / 'warehouse')!r}).write_new_files(\n"
        f"    {str(folder)!r}, files_to_write({len(wanted)}))\n"
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr

    before = visible_files(folder)
    assert before == dict(wanted[: KILL_AT - 1])  # the cut file is not there under its name
    if unnamed:
        assert sorted(path.name for path in folder.iterdir()) == sorted(before)  # nor anywhere
    kept = inodes(folder)

    written = Warehouse.at(tmp_path / "warehouse").write_new_files(str(folder), wanted)

    assert written == len(wanted) - len(before)
    assert visible_files(folder) == dict(wanted)
    assert {name: inodes(folder)[name] for name in before} == {name: kept[name] for name in before}


def test_a_file_that_exists_is_left_as_it_is(tmp_path: Path) -> None:
    place = Warehouse.at(tmp_path)
    folder = place.url("study", "table", "attachments")
    assert place.write_new_files(folder, [("a.json", b"first"), ("b.csv", b"1,2\n")]) == 2
    kept = inodes(Path(folder))

    written = place.write_new_files(folder, [("a.json", b"other"), ("c.bin", b"\x00\x01")])

    assert written == 1
    assert visible_files(Path(folder)) == {
        "a.json": b"first",
        "b.csv": b"1,2\n",
        "c.bin": b"\x00\x01",
    }
    assert sorted(path.name for path in Path(folder).iterdir()) == ["a.json", "b.csv", "c.bin"]
    assert inodes(Path(folder))["a.json"] == kept["a.json"]


def export_study(store: Path, place: Path) -> _engine.StudyResult:
    """Export every record of study-a from `store` into the warehouse `place`."""
    with _engine.connect(f"sqlite:///{store}", threads=1) as connection:
        return _engine.export_study(
            connection, whole_window_job("study-a", SharingMode.ALL), Warehouse.at(place)
        )


def attachment_files(place: Path) -> dict[str, bytes]:
    """Every attachment file under the warehouse `place`, by its path there."""
    return {
        str(path.relative_to(place)): path.read_bytes()
        for path in sorted(place.rglob("attachments/*"))
    }


def test_an_export_killed_while_writing_attachments_then_run_again_matches_a_clean_run(
    tmp_path: Path,
) -> None:
    store = tmp_path / "records.sqlite"
    generated_store(
        store,
        seed=11,
        studies=1,
        participants=12,
        days=2,
        records_per_day=80,
        attachment_share=0.2,
    )
    clean = tmp_path / "clean"
    export_study(store, clean)
    expected = attachment_files(clean)
    assert len(expected) > KILL_AT

    again = tmp_path / "killed"
    killed = run_in_child(
        "from pathlib import Path\n"
        "from tests.export.test_attachment_files import die_while_writing, export_study\n"
        "die_while_writing(True)\n"
        f"export_study(Path({str(store)!r}), Path({str(again)!r}))\n"
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    before = attachment_files(again)
    assert len(before) == KILL_AT - 1
    assert all(expected[name] == content for name, content in before.items())
    kept = {name: (again / name).stat().st_ino for name in before}

    export_study(store, again)

    assert attachment_files(again) == expected
    assert {name: (again / name).stat().st_ino for name in before} == kept  # not written twice
    assert not [path for path in again.rglob("attachments/.*")]
