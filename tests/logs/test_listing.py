"""Listing a folder of many logs: the sizes and mtimes looked up in bulk (in threads) are those
`os.stat` gives, in the order a walk finds the files, and a file gone or changed into a folder
since it was listed is reported, not read. Each holds for both walks: `_liststat` (C, as built
by the install) and, where it was not built, `os.scandir` with Arrow."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dutydesk.logs import _files
from dutydesk.logs._files import FileList, Roots, list_local

MANY = _files.BULK_STAT_FILES + 50


@pytest.fixture(params=["liststat", "scandir"], autouse=True)
def walk(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with the C walk and with the one used where it was not built."""
    if request.param == "scandir":
        monkeypatch.setattr(_files, "native", None)
    return str(request.param)


def listed(pattern: str, root: Path) -> FileList:
    found = FileList()
    list_local(pattern, Roots((root.resolve(),), ()), found)
    return found


def expected_walk(folder: Path) -> list[str]:
    """Every plain file below `folder`, in the walk's order (names sorted, folder by folder,
    a folder's files where the folder's name falls)."""
    paths: list[str] = []
    for name in sorted(os.listdir(folder)):
        path = folder / name
        if path.is_symlink():
            continue
        if path.is_dir():
            paths += expected_walk(path)
        else:
            paths.append(str(path))
    return paths


@pytest.fixture
def many(log_root: Path) -> Path:
    """More files than the bulk lookup's threshold, in two folders with a subfolder between
    the first folder's files, each of its own size."""
    folder = log_root / "many"
    for index in range(MANY):
        sub = folder / ("a" if index % 2 else "c")
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"access-{index:05d}.log").write_text("x" * (index % 97))
    (folder / "a" / "b-nested").mkdir()
    (folder / "a" / "b-nested" / "inside.log").write_text("nested\n")
    os.utime(folder / "a" / "access-00001.log", ns=(1_700_000_000_123_456_789,) * 2)
    return folder


def test_a_bulk_listing_gives_what_stat_gives_in_walk_order(many: Path, log_root: Path) -> None:
    found = listed(str(many), log_root)
    assert found.files == expected_walk(many.resolve())
    assert len(found.files) == MANY + 1
    for path, size, mtime in zip(found.files, found.sizes, found.mtimes, strict=True):
        info = os.stat(path)
        assert (size, mtime) == (info.st_size, info.st_mtime_ns), path
    assert found.mtimes[found.files.index(str(many / "a" / "access-00001.log"))] == (
        1_700_000_000_123_456_789
    )
    assert found.problems == []


def test_the_bulk_and_one_by_one_lookups_agree(
    many: Path, log_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (log_root / "elsewhere.log").write_text("linked\n")
    (many / "a" / "b-link.log").symlink_to(log_root / "elsewhere.log")
    bulk = listed(str(many), log_root)
    monkeypatch.setattr(_files, "BULK_STAT_FILES", 10**9)
    one_by_one = listed(str(many), log_root)
    assert (bulk.files, bulk.sizes, bulk.mtimes) == (
        one_by_one.files,
        one_by_one.sizes,
        one_by_one.mtimes,
    )
    # The link is followed to its file (inside the roots), where the walk meets it.
    assert str((log_root / "elsewhere.log").resolve()) in bulk.files


@pytest.mark.parametrize("threshold", [1, 10**9], ids=["bulk", "one-by-one"])
def test_a_file_gone_or_made_a_folder_since_listed_is_a_problem(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threshold: int
) -> None:
    monkeypatch.setattr(_files, "BULK_STAT_FILES", threshold)
    kept, gone, folder = tmp_path / "kept.log", tmp_path / "gone.log", tmp_path / "now-a-folder"
    kept.write_text("kept\n")
    folder.mkdir()
    listing = _files._Listing()
    listing.plain_in(str(tmp_path), ["kept.log", "gone.log", "now-a-folder"])
    found = FileList()
    listing.add_to(found)
    assert found.files == [str(kept)]
    assert found.sizes == [5]
    assert {problem.file: problem.reason for problem in found.problems} == {
        str(gone): "No such file or directory",
        str(folder): "no longer a plain file",
    }


def test_a_name_that_is_not_utf8_is_looked_up_too(many: Path, log_root: Path) -> None:
    odd = os.fsdecode(bytes(many / "a") + b"/caf\xe9.log")
    Path(odd).write_bytes(b"x" * 7)
    found = listed(str(many), log_root)
    assert found.sizes[found.files.index(odd)] == 7
    assert len(found.files) == MANY + 2


def test_a_forked_child_lists_with_threads_of_its_own(many: Path, log_root: Path) -> None:
    """The lookup threads stay for the next listing; a child forked after one (a prefork
    worker) cannot use them, as they did not survive the fork, and starts its own."""
    import signal
    import time

    expected = listed(str(many), log_root)
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports by its exit status
        try:
            found = listed(str(many), log_root)
            os._exit(0 if (found.files, found.sizes) == (expected.files, expected.sizes) else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, status = os.waitpid(child, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    raise AssertionError("the forked child's listing hung")


def test_a_file_named_twice_is_listed_once() -> None:
    found = FileList()
    found.extend(["/a", "/b", "/a"], [1, 2, 1], [10, 20, 10])
    found.extend(["/c", "/b"], [3, 2], [30, 20])
    found.add("/c", 3, mtime_ns=30)
    assert (found.files, found.sizes, found.mtimes) == (["/a", "/b", "/c"], [1, 2, 3], [10, 20, 30])
    again = FileList()
    again.extend(["/a", "/b"], [1, 2], [10, 20])
    again.extend(["/a", "/c"], [1, 3], [10, 30])
    assert again.files == ["/a", "/b", "/c"]


def test_a_glob_naming_folders_and_their_files_lists_each_file_once(
    many: Path, log_root: Path
) -> None:
    """`**` matches each folder and each file below it: the walk of a folder and the glob's
    match of a file in it name the same file."""
    (many / "to-a").symlink_to(many / "a")
    found = listed(str(many) + "/**", log_root)
    assert len(found.files) == len(set(found.files)) == MANY + 1
    assert sorted(found.files) == sorted(expected_walk(many.resolve()))
