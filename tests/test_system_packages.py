"""`scripts/system-packages`, which `make test` runs first: the Debian packages the tests use.

`apt-get` here is a stand-in script on PATH that records how it was called (and "installs" a
package by putting its command on PATH): the real one would change this machine.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "system-packages"
PACKAGE_LIST = ROOT / "scripts" / "system-packages.txt"
FAKE_APT_GET = """#!/bin/sh
echo "$*" >> "{log}"
if [ "$1" = install ]; then
  for word in "$@"; do
    case "$word" in
      install|-*) ;;
      *) printf '#!/bin/sh\\n' > "{bin}/$word"; chmod +x "{bin}/$word" ;;
    esac
  done
fi
"""


def run_check(
    tmp_path: Path, listed: str | None, *, as_root: str, command: list[str] | None = None
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the check (or `command`) with a stand-in apt-get; the result and apt-get's calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "apt-get.log"
    apt_get = bin_dir / "apt-get"
    apt_get.write_text(FAKE_APT_GET.format(log=log, bin=bin_dir))
    apt_get.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    env["SYSTEM_PACKAGES_AS_ROOT"] = as_root
    if listed is not None:
        list_file = tmp_path / "packages.txt"
        list_file.write_text(listed)
        env["SYSTEM_PACKAGES_LIST"] = str(list_file)
    done = subprocess.run(
        command or [str(SCRIPT)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return done, calls


MISSING_TWO = (
    "# a comment line\n"
    "dutydesk-test-tool   dutydesk-test-tool   # not installed anywhere\n"
    "sh                   sh\n"
    "dutydesk-test-file   /nonexistent/dutydesk-test-file\n"
)


def test_missing_packages_stop_with_the_one_install_line_when_not_root(tmp_path: Path) -> None:
    done, calls = run_check(tmp_path, MISSING_TWO, as_root="no")
    assert done.returncode == 1
    assert done.stderr == (
        "make test needs: sudo apt-get install -y --no-install-recommends "
        "dutydesk-test-tool dutydesk-test-file\n"
    )
    assert calls == []


def test_as_root_the_missing_packages_are_installed_in_one_go(tmp_path: Path) -> None:
    listed = "dutydesk-test-tool  dutydesk-test-tool\ndutydesk-other  dutydesk-other\nsh  sh\n"
    done, calls = run_check(tmp_path, listed, as_root="yes")
    assert done.returncode == 0, done.stderr
    assert calls == [
        "update -q",
        "install -y -q --no-install-recommends dutydesk-test-tool dutydesk-other",
    ]


def test_as_root_a_package_that_installs_nothing_usable_is_an_error(tmp_path: Path) -> None:
    done, _calls = run_check(tmp_path, "a-package  /nonexistent/tool\n", as_root="yes")
    assert done.returncode == 1
    assert "still missing after apt-get install: a-package" in done.stderr


def test_nothing_to_do_when_every_package_is_there(tmp_path: Path) -> None:
    done, calls = run_check(tmp_path, "sh  sh\npython  python3:json\n", as_root="no")
    assert (done.returncode, done.stdout, done.stderr, calls) == (0, "", "", [])


def test_this_machine_has_every_listed_package(tmp_path: Path) -> None:
    done, calls = run_check(tmp_path, None, as_root="no")
    assert (done.returncode, done.stderr, calls) == (0, "", [])


def test_make_test_stops_at_once_when_a_package_is_missing(tmp_path: Path) -> None:
    done, calls = run_check(tmp_path, MISSING_TWO, as_root="no", command=["make", "test"])
    assert done.returncode != 0
    assert "make test needs: sudo apt-get install -y --no-install-recommends" in done.stderr
    assert "pytest" not in done.stdout
    assert calls == []


def test_list_names_every_program_the_tests_look_for() -> None:
    lines = PACKAGE_LIST.read_text().splitlines()
    checks = {line.split()[1] for line in lines if line.strip() and not line.startswith("#")}
    wanted: list[set[str]] = []
    for path in (ROOT / "tests").rglob("*.py"):
        for line in path.read_text().splitlines():
            names = set(re.findall(r"""shutil\.which\(["']([^"']+)["']\)""", line))
            names |= set(re.findall(r"""Path\(["'](/usr/s?bin/[^"']+)["']\)""", line))
            if names:
                wanted.append(names)
    assert wanted, "found no program the tests look for"
    assert [names for names in wanted if not names & checks] == []
