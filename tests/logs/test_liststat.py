"""The log listing's C part, `_liststat`: built by the install, telling what `os.stat` tells,
and walking a tree as the Python walk it replaces does (`test_listing` runs the listing's other
tests on both walks)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from dutydesk.logs import _files
from dutydesk.logs._files import FileList, Roots, list_local


def listed(pattern: str, root: Path) -> FileList:
    found = FileList()
    list_local(pattern, Roots((root.resolve(),), ()), found)
    return found


def test_the_c_walk_is_built() -> None:
    """The install builds `_liststat` (a C compiler is there); without it every listing would
    quietly take the slower walk."""
    assert importlib.util.find_spec("dutydesk.logs._liststat") is not None


def odd_tree(root: Path) -> Path:
    """Folders enough to be read ahead, one of them bigger than a thread's lookup, links to a
    file and a folder inside the roots and to one outside, a FIFO, and names that are not
    UTF-8 or sort differently as bytes and as text."""
    tree = root / "tree"
    for index in range(_files.READ_AHEAD_FOLDERS + 3):
        sub = tree / f"day-{index:02d}"
        sub.mkdir(parents=True)
        count = 2 * _files.STAT_BATCH + 5 if index == 2 else 3
        for number in range(count):
            (sub / f"access-{number:05d}.log").write_text("x" * (number % 13))
    (tree / "day-01" / "deeper").mkdir()
    (tree / "day-01" / "deeper" / "inner.log").write_text("inner\n")
    (tree / "plain.log").write_text("plain\n")
    (tree / "day-03" / "to-plain.log").symlink_to(tree / "plain.log")
    (tree / "day-04" / "to-day-05").symlink_to(tree / "day-05")
    outside = root.parent / "outside.log"
    outside.write_text("secret\n")
    (tree / "day-06" / "to-outside.log").symlink_to(outside)
    os.mkfifo(tree / "day-07" / "a-fifo")
    odd_names = (b"caf\xe9.log", b"\xc3\xa9-first-as-text.log", b"\x80-first-as-bytes.log", b"zz")
    for raw in odd_names:
        Path(os.fsdecode(bytes(tree / "day-08") + b"/" + raw)).write_bytes(b"y" * len(raw))
    return tree


def test_both_walks_list_an_odd_tree_alike(log_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tree = odd_tree(log_root)
    c_walk = listed(str(tree), log_root)
    monkeypatch.setattr(_files, "native", None)
    python_walk = listed(str(tree), log_root)
    assert (c_walk.files, c_walk.sizes, c_walk.mtimes) == (
        python_walk.files,
        python_walk.sizes,
        python_walk.mtimes,
    )
    assert [(p.file, p.reason) for p in c_walk.problems] == [
        (p.file, p.reason) for p in python_walk.problems
    ]
    # What the walk should find, counted apart: the link to a file where the link is, the
    # linked folder's files once (where the walk meets the folder first), no FIFO, nothing
    # outside the roots.
    assert len(c_walk.files) == 2 * _files.STAT_BATCH + 5 + 3 * 10 + 1 + 1 + 4
    assert str(tree / "day-07" / "a-fifo") not in c_walk.files
    assert [p.reason for p in c_walk.problems] == ["leads outside the allowed log roots"]
    for path, size, mtime in zip(c_walk.files, c_walk.sizes, c_walk.mtimes, strict=True):
        info = os.stat(path)
        assert (size, mtime) == (info.st_size, info.st_mtime_ns), path


def test_the_c_lookups_say_what_stat_says() -> None:
    from dutydesk.logs import _liststat

    here = Path(__file__).parent
    names, kinds, odd = _liststat.entries(str(here))
    assert names == sorted(os.listdir(here)) and odd is False
    assert kinds[names.index("conftest.py")] == _files._PLAIN
    sizes, mtimes = _liststat.stats(str(here), ["conftest.py", "no-such.log", "."])
    info = os.stat(here / "conftest.py")
    assert (sizes, mtimes) == ([info.st_size, -1, -1], [info.st_mtime_ns, -1, -1])
    with pytest.raises(FileNotFoundError) as raised:
        _liststat.entries(str(here / "no-such-folder"))
    assert raised.value.filename == str(here / "no-such-folder")
    assert _liststat.stats(str(here / "no-such-folder"), ["a", "b"]) == ([-1, -1], [-1, -1])
