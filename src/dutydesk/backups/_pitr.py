"""PostgreSQL point-in-time recovery: is WAL archiving configured and current, a base backup
with `pg_basebackup`, and a restore of base backup plus archived WAL to a moment into a
scratch cluster made with `initdb`/`pg_ctl` from Debian's PostgreSQL.

initdb and the server refuse to run as root: run as root, the desk runs them as the
`postgres` user (`runuser -u postgres --`) in a folder made for that user under the system's
temporary folder.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pwd
import shutil
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dutydesk.backups._postgres import ToolFailed, libpq, program, psycopg_url, run

SERVER_USER = "postgres"
ARCHIVE_STALE = dt.timedelta(hours=1)


def _as_server_user(args: list[str]) -> list[str]:
    """The command, run as the `postgres` user when we are root (initdb and postgres refuse
    root)."""
    if os.geteuid() == 0:
        return ["runuser", "-u", SERVER_USER, "--", *args]
    return args


def _give_to_server_user(path: Path) -> None:
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVER_USER)
        for root, folders, files in os.walk(path):
            os.chown(root, user.pw_uid, user.pw_gid)
            for name in [*folders, *files]:
                os.chown(os.path.join(root, name), user.pw_uid, user.pw_gid)


def scratch_folder(prefix: str) -> Path:
    """A new folder the server user may write (under the system's temporary folder)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o700)
    _give_to_server_user(folder)
    return folder


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ScratchCluster:
    """A throw-away PostgreSQL cluster on a free local port."""

    folder: Path
    port: int = field(default_factory=_free_port)

    @property
    def data(self) -> Path:
        """The data directory."""
        return self.folder / "data"

    @property
    def url(self) -> str:
        """Its `postgres` database as the desk connects to it."""
        return f"postgresql+psycopg://{SERVER_USER}@127.0.0.1:{self.port}/postgres"

    def initdb(self, settings: dict[str, str] | None = None) -> None:
        """Make an empty cluster with trust auth for local connections, plus `settings`."""
        run(
            _as_server_user(
                [program("initdb"), "-D", str(self.data), "-U", SERVER_USER, "--auth=trust"]
            )
        )
        self.configure(settings or {})

    def configure(self, settings: dict[str, str]) -> None:
        """Append settings to postgresql.auto.conf (read at the next start)."""
        lines = [f"{name} = '{value}'" for name, value in settings.items()]
        with (self.data / "postgresql.auto.conf").open("a") as conf:
            conf.write("\n".join(lines) + "\n")

    def start(self) -> None:
        """Start the server on 127.0.0.1:port (sockets in the folder) and wait for it."""
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder}"
        log = self.folder / "server.log"
        pg_ctl = [program("pg_ctl"), "-D", str(self.data), "-l", str(log), "-o", options]
        run(_as_server_user([*pg_ctl, "-w", "-t", "120", "start"]))

    def stop(self) -> None:
        """Stop the server fast (nothing if it is not running)."""
        if (self.data / "postmaster.pid").exists():
            stop = [program("pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"]
            # Failing means it stopped meanwhile: nothing left to stop.
            with contextlib.suppress(ToolFailed):
                run(_as_server_user(stop))

    def remove(self) -> None:
        """Stop it and delete its folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def archiving_problems(url: str) -> list[str]:
    """What keeps point-in-time recovery from working on the server at `url`, each with the
    change to make; empty when WAL archiving is configured and current."""
    import psycopg

    problems = []
    with psycopg.connect(psycopg_url(url)) as connection:

        def setting(name: str) -> str:
            row = connection.execute("SELECT current_setting(%s)", (name,)).fetchone()
            return str(row[0]) if row else ""

        if setting("wal_level") not in ("replica", "logical"):
            problems.append("set wal_level = replica in postgresql.conf, then restart the server")
        if setting("archive_mode") not in ("on", "always"):
            problems.append("set archive_mode = on in postgresql.conf, then restart the server")
        command, library = setting("archive_command"), setting("archive_library")
        if not command.strip() and not library.strip():
            problems.append(
                "set archive_command, e.g. archive_command = 'test ! -f /ARCHIVE/%f && "
                "cp %p /ARCHIVE/%f' (or pgBackRest's archive-push), then reload the server"
            )
        row = connection.execute(
            "SELECT last_archived_time, last_failed_time, last_failed_wal, "
            "now() - pg_postmaster_start_time() FROM pg_stat_archiver"
        ).fetchone()
    if row is not None and not problems:
        archived, failed, failed_wal, uptime = row
        if failed is not None and (archived is None or failed > archived):
            problems.append(
                f"archive_command is failing (last failure at {failed:%Y-%m-%d %H:%M:%S}, "
                f"WAL {failed_wal}): check the archive folder's space and permissions and the "
                "server log"
            )
        elif archived is None and uptime > ARCHIVE_STALE:
            problems.append(
                "no WAL segment was ever archived: check archive_command, or set "
                "archive_timeout = 300 so quiet servers archive too"
            )
        elif archived is not None and dt.datetime.now(dt.UTC) - archived > ARCHIVE_STALE:
            problems.append(
                f"the newest archived WAL is from {archived:%Y-%m-%d %H:%M:%S}: set "
                "archive_timeout = 300 so quiet servers archive at least every 5 minutes"
            )
    return problems


def base_backup(url: str, into: Path) -> None:
    """`pg_basebackup` of the server (plain format, the WAL it needs included)."""
    uri, env = libpq(url)
    args = [program("pg_basebackup"), "-d", uri, "-D", str(into), "-Fp", "-X", "stream"]
    run([*args, "-c", "fast", "--no-password"], env)


def restore_to(base: Path, archive: Path, at: dt.datetime, cluster: ScratchCluster) -> None:
    """Copy the base backup into the scratch cluster, replay archived WAL up to `at`, promote,
    and leave it running."""
    shutil.copytree(base, cluster.data, dirs_exist_ok=True)
    (cluster.data / "postmaster.pid").unlink(missing_ok=True)
    cluster.configure(
        {
            "restore_command": f"cp {archive}/%f %p",
            "recovery_target_time": at.astimezone(dt.UTC).isoformat(),
            "recovery_target_action": "promote",
            "archive_mode": "off",
        }
    )
    (cluster.data / "recovery.signal").touch()
    _give_to_server_user(cluster.folder)
    os.chmod(cluster.data, 0o700)
    cluster.start()
